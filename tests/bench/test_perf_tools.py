"""Logic of the performance benchmarks on tiny inputs: percentiles, scheduling, article picking, ratios, import-time
parsing, extrapolation, plots and the dispatcher. Nothing here is timed."""

from __future__ import annotations

import json
import math
import os

import pytest

from bench import answer, coldstart, common, ingest, plots, scale
from index.settings import Settings


def test_percentiles_interpolate_and_handle_edges():
    assert common.pct([5.0], 95) == 5.0
    assert common.pct([1, 2, 3, 4], 50) == 2.5
    assert common.pct(list(range(101)), 95) == 95
    assert math.isnan(common.pct([], 50))
    assert common.latency([10, 30, 20]) == {"n": 3, "p50_ms": 20, "p95_ms": 29}


def test_proc_status_reads_this_process():
    rss, peak = common.proc_status_kb("VmRSS"), common.proc_status_kb("VmHWM")
    assert rss and peak and peak >= rss
    assert common.proc_status_kb("NoSuchField") is None
    assert common.proc_status_kb("VmRSS", pid=2**22 + 12345) is None


def test_folder_bytes_counts_files_recursively(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    assert common.folder_bytes(tmp_path) == 8


def test_isolated_settings_never_touch_the_callers_store(settings, tmp_path):
    s = common.isolated(
        settings.model_copy(update={"chroma_host": "example"}), tmp_path, tmp_path / "seeds", chunk_size=300
    )
    assert s.store_path == tmp_path / "store" and s.seeds_dir == tmp_path / "seeds"
    assert s.chroma_host is None and s.chunk_size == 300


def test_answer_schedule_alternates_and_never_repeats_a_question_back_to_back():
    order = answer.schedule(15, 2)
    assert len(order) == 60
    assert [v for v, _ in order[:4]] == ["cached", "uncached", "cached", "uncached"]
    for variant in ("cached", "uncached"):
        assert sorted(i for v, i in order if v == variant) == sorted(list(range(15)) * 2)
    assert all(a[1] != b[1] for a, b in zip(order, order[1:]))
    with pytest.raises(ValueError):
        answer.schedule(3, 1)


def test_answer_summary_uses_llama_timings_and_skips_short_generations():
    runs = [
        {
            "ttft_ms": 100,
            "total_ms": 900,
            "llama": {"prompt_n": 40, "cache_n": 300, "predicted_n": 20, "predicted_per_second": 10.0},
        },
        {
            "ttft_ms": 300,
            "total_ms": 1100,
            "llama": {"prompt_n": 60, "cache_n": 300, "predicted_n": 2, "predicted_per_second": 99.0},
        },
        {"ttft_ms": 200, "total_ms": 1000, "llama": None},
    ]
    s = answer.summarize(runs)
    assert s["ttft"]["p50_ms"] == 200 and s["total"]["p50_ms"] == 1000
    assert s["gen_tok_s_p50"] == 10.0  # the 2-token answer says nothing about decode speed
    assert s["prompt_tokens_p50"] == 50 and s["cached_tokens_p50"] == 300


def test_questions_come_from_the_article_eval_set():
    qs = answer.questions(15)
    assert len(qs) == 15 and all(q.endswith("?") for q in qs)


def test_pick_articles_reaches_the_target_and_cycles_when_short():
    assert scale.pick_articles([10, 0, 5, 20], 14) == [0, 2]
    assert scale.pick_articles([3, 4], 10) == [0, 1, 0]
    with pytest.raises(ValueError):
        scale.pick_articles([0, 0], 5)


def _row(name, chunks, hybrid, dense, build):
    lat = {m: {"p50_ms": v, "p95_ms": v * 2} for m, v in (("hybrid", hybrid), ("dense", dense), ("bm25", 1.0))}
    return {
        "name": name,
        "chunks": chunks,
        "latency": lat,
        "build_s": build,
        "store_mb": chunks / 100,
        "rss_mb": 500 + chunks / 100,
        "reused": 0,
    }


def test_extrapolation_is_linear_through_the_two_largest_and_labelled():
    rows = [_row("article", 15, 5, 4, 1), _row("1k", 1000, 10, 8, 20), _row("10k", 10000, 28, 17, 200)]
    est = scale.extrapolate(rows, 100_000)
    assert est["estimate"] is True
    assert est["hybrid_p50_ms"] == pytest.approx(10 + 18 * 99_000 / 9000, abs=0.1)
    assert est["build_s"] == pytest.approx(20 + 180 * 99_000 / 9000, abs=0.1)
    assert scale.extrapolate(rows[:2], 100_000) == {}


def test_ingest_ratios_and_verdicts():
    ours = {"build_chunks_per_s": 45.0, "encoder_chunks_per_s": 50.0, "full_build_s": 20.0, "nochange_rebuild_s": 0.5}
    tutorial = {"chunks": 450, "seconds": 40.0}
    r = ingest.compare(ours, tutorial)
    assert r["build_vs_encoder"] == pytest.approx(0.9)
    assert r["build_vs_tutorial_corpus"] == pytest.approx(2.0)
    assert r["build_vs_tutorial_chunks"] == pytest.approx(4.0)
    assert r["rebuild_vs_full"] == pytest.approx(0.025)
    assert ingest.verdicts(r) == {"build_vs_encoder": True, "build_vs_tutorial_corpus": True, "rebuild_vs_full": True}
    assert ingest.verdicts({**r, "rebuild_vs_full": 0.06, "build_vs_encoder": 0.89}) == {
        "build_vs_encoder": False,
        "build_vs_tutorial_corpus": True,
        "rebuild_vs_full": False,
    }


def test_parse_importtime_finds_top_level_modules_and_heavy_packages():
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       120 |        120 |   _io",
            "import time:       300 |        500 | encodings",
            "import time:      1000 |       1000 |     torch._C",
            "import time:      2000 |       4000 |   torch",
            "import time:       500 |       9000 | ui.cli",
            "some other stderr line",
        ]
    )
    got = coldstart.parse_importtime(stderr)
    assert got["modules"] == 5
    assert [t["module"] for t in got["top"]] == ["ui.cli", "encodings"]
    assert got["total_ms"] == 9.5
    assert got["heavy_loaded"] == ["torch"]
    assert coldstart.parse_importtime("import time:  1 |  1 | typer")["heavy_loaded"] == []


def test_plots_write_pngs_from_results(tmp_path):
    scale_result = {
        "modes": ["hybrid", "dense"],
        "machine": {"cpus": 2},
        "rows": [_row("10k", 10000, 28, 17, 200), _row("1k", 1000, 10, 8, 20)],
        "extrapolated_100k": {"chunks": 100000, "hybrid_p50_ms": 200.0, "dense_p50_ms": 100.0},
    }
    assert plots.scale_series(scale_result)["hybrid"][0] == (1000, 10, 20)
    ingest_result = {
        "articles": 2,
        "corpus_chars": 10000,
        "machine": {"cpus": 2},
        "ours": {"chunks": 100, "encoder_chunks_per_s": 50.0, "build_chunks_per_s": 45.0, "full_build_s": 2.2},
        "tutorial": {"chunks": 40, "seconds": 4.0},
    }
    lat = {"p50_ms": 900.0, "p95_ms": 1500.0}
    answer_result = {
        "model": "m.gguf",
        "machine": {"cpus": 2},
        "summary": {"cached": {"ttft": lat, "total": lat}, "uncached": {"ttft": lat, "total": lat}},
    }
    for plot, result in (
        (plots.plot_scale, scale_result),
        (plots.plot_ingest, ingest_result),
        (plots.plot_answer, answer_result),
    ):
        out = plot(result, tmp_path / "p.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_and_envelope_record_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    result = common.envelope("scale", ["--sizes", "1000"], {"rows": []})
    assert result["command"] == "python -m bench scale --sizes 1000"
    assert result["machine"]["cpus"] == os.cpu_count()
    path = common.save(result)
    assert path == tmp_path / "scale.json" and json.loads(path.read_text())["benchmark"] == "scale"


def test_dispatcher_routes_every_perf_benchmark_to_a_main():
    import importlib

    from bench.__main__ import PERF

    for name, target in PERF.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func or "main")), name


def test_bench_help_lists_the_perf_benchmarks(capsys):
    from bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["scale", "--help"])
    assert "--sizes" in capsys.readouterr().out


def test_load_flags_another_questions_answer_only_when_it_does_not_answer_this_one():
    from bench.load import Item, Result, compare

    pak = Item("a01", "Who co-chaired on the Pakistani side?", ("Dar",))
    chn = Item("a02", "Who was the Chinese co-chair?", ("Wang Yi",))
    port = Item("a37", "Which port?", ("Gwadar",))
    alone = {
        "a01": Result(pak, -1, 0, answer="Deputy PM Ishaq Dar [1]"),
        "a02": Result(chn, -1, 0, answer="Ishaq Dar [1]"),
        "a37": Result(port, -1, 0, answer="Gwadar Port [2]"),
    }
    shared = Result(pak, 0, 0, answer="Ishaq Dar [1]")  # a02's (wrong) answer, and a right one for a01
    swapped = Result(port, 1, 0, answer="Ishaq Dar [1]")  # a02's answer where a port was asked: mixed
    compare([shared, swapped], alone)
    assert not any(p.startswith("mixed") for p in shared.problems)
    assert any(p.startswith("mixed: this is the answer to a02") for p in swapped.problems)


@pytest.mark.slow
def test_whole_process_ingest_runs_both_pipelines_as_processes_and_compares_the_best(tmp_path):
    from bench.ingest_process import TARGET, run

    result = run(Settings(_env_file=None, data_dir=tmp_path / "data"), articles=1, rounds=1)
    assert result["corpus_chars"] > 1000 and len(result["ours_s"]) == len(result["tutorial_s"]) == 1
    assert all(s > 0 for s in result["ours_s"] + result["tutorial_s"])
    assert result["ratio"] == round(min(result["tutorial_s"]) / min(result["ours_s"]), 3)
    assert result["met"] == (result["ratio"] >= TARGET)
