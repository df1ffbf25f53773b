"""bench search-scale and query-encode: the plot, the tables and the before/after BM25 search. Nothing is timed."""

from __future__ import annotations

from rich.console import Console

from bench import plots, query_encode, search_scale
from index.bm25 import Bm25Index


def _lat(p50: float) -> dict:
    return {"n": 10, "p50_ms": p50, "p95_ms": 2 * p50}


RESULT = {
    "machine": {"cpus": 2},
    "server": False,
    "top_k": 4,
    "target_1m_hybrid_p50_ms": 100.0,
    "rows": [
        {
            "chunks": n,
            "chroma_write_s": 1.0,
            "bm25_build_s": 1.0,
            "chroma_mb": 5.0,
            "bm25_mb": 1.0,
            "peak_rss_mb": 300,
            "latency": {"hybrid": _lat(h), "dense": _lat(d), "bm25": _lat(b)},
        }
        for n, h, d, b in ((10_000, 8.0, 3.0, 0.7), (100_000, 18.0, 9.0, 5.0))
    ],
    "bm25_rows": [
        {"chunks": n, "build_s": 1.0, "rss_mb": 100, "search": {"top_k": _lat(a), "sort": _lat(b)}}
        for n, a, b in ((10_000, 0.5, 0.7), (1_000_000, 30.0, 90.0))
    ],
}


def test_search_scale_plot_and_tables(tmp_path):
    assert plots.PLOTS["search-scale"] is plots.plot_search_scale
    out = plots.plot_search_scale(RESULT, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    both = plots.plot_search_scale(RESULT, tmp_path / "both.png", server={**RESULT, "server": True})
    assert both.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and both.read_bytes() != out.read_bytes()
    console = Console(record=True, width=160)
    search_scale.render(RESULT, console)
    text = console.export_text()
    assert "1,000,000" in text and "18.0/36.0" in text and "30.0/60.0" in text


def test_the_before_search_of_the_benchmark_ranks_like_the_index():
    texts = ["Khunjerab Pass trade", "trade grew", "the pass", "Khunjerab trade trade"] * 4
    index = Bm25Index.build([f"c{i}" for i in range(len(texts))], texts)
    for q in ("Khunjerab trade", "pass", "nothing here"):
        assert search_scale._sorted_search(index, q, 5) == index.search(q, 5)


def test_query_encode_table():
    row = {"p50_ms": 10.0, "p95_ms": 20.0, "cpu_p50_ms": 9.0, "speedup_p50": 1.0}
    result = {
        "questions": 58,
        "rounds": 1,
        "torch_threads": 2,
        "load_average": 1.5,
        "served": query_encode.SERVED,
        "target_p50_ms": 10.0,
        "target_met": True,
        "paths": {p: row for p in query_encode.PATHS},
    }
    console = Console(record=True, width=160)
    query_encode.render(result, console)
    text = console.export_text()
    assert "single-query" in text and "onnx-1t" in text and "onnx (served) p50 <= 10 ms: True" in text


def test_the_1m_estimate_adds_measured_bm25_growth_and_extrapolated_dense_growth():
    result = {
        **RESULT,
        "bm25_rows": RESULT["bm25_rows"]
        + [{"chunks": 100_000, "build_s": 1.0, "rss_mb": 1, "search": {"top_k": _lat(3.0), "sort": _lat(9.0)}}],
    }
    est = search_scale.estimate(result)
    assert est["dense_p50_ms_log"] == 15.0 and est["dense_p50_ms_linear"] == 90.0  # 3 -> 9 per decade; x10
    assert est["hybrid_p50_ms_log"] == 18.0 + 27.0 + 6.0 and est["hybrid_p50_ms_linear"] == 18.0 + 27.0 + 81.0
    assert search_scale.estimate(RESULT) == {}  # BM25 alone was not measured at the largest full-path size
