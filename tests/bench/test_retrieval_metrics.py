"""The benchmark's scoring: what counts as a hit, how ranks become hit@k and MRR, how the chunk size is chosen."""

from __future__ import annotations

import pytest

from bench import retrieval
from bench.retrieval import Target, first_hit, metrics, recommend
from index.load import clean_text
from index.split import split_document
from index.types import Document
from qa.types import Passage

SEED = retrieval.ARTICLE


def _passage(source: str, start: int, end: int) -> Passage:
    return Passage(n=1, chunk_id=f"{start}-{end}", source=source, title="t", start=start, end=end, score=0.0, text="")


def test_metrics_from_ranks():
    m = metrics([1, 2, None, 5, 11], budget_k=2)
    assert m["hit@budget"] == pytest.approx(2 / 5)
    assert m["hit@1"] == pytest.approx(1 / 5)
    assert m["hit@5"] == pytest.approx(3 / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 11) / 5)
    assert metrics([]) == {"hit@1": 0.0, "hit@5": 0.0, "mrr": 0.0, "hit@budget": 0.0}


def test_a_hit_needs_the_right_document_and_the_whole_span():
    target = Target("q", "a.txt", 100, 120)
    ranked = [
        _passage("b.txt", 0, 500),  # right span, wrong document
        _passage("a.txt", 110, 400),  # cuts the support
        _passage("a.txt", 0, 119),  # one character short
        _passage("a.txt", 90, 120),
    ]
    assert first_hit(ranked, target) == 4
    assert first_hit(ranked[:3], target) is None
    squad_style = Target("q", "a.txt", 50, 51)  # answer's first character
    assert first_hit([_passage("a.txt", 51, 90), _passage("a.txt", 0, 51)], squad_style) == 2


def test_article_targets_locate_every_support_in_real_chunks():
    _, _, text = clean_text(SEED.read_text(encoding="utf-8"))
    targets = retrieval.article_targets(text, SEED.name)
    assert len(targets) >= 45
    for t in targets:
        assert 20 <= t.end - t.start <= 200 and t.source == SEED.name
    # With the index's splitter at the default size, every support sits whole inside some chunk.
    doc = Document(source=SEED.name, title="", subtitle="", text=text, sha256="")
    chunks = split_document(doc, 500, 100)
    passages = [_passage(c.source, c.start, c.end) for c in chunks]
    assert all(first_hit(passages, t) is not None for t in targets)


def test_recommendation_weighs_first_place_and_equal_context_and_prefers_the_smaller_on_ties():
    def point(size, article, squad):  # (hit@1, hit@budget) of hybrid search per set
        return {
            "chunk_size": size,
            "chunk_overlap": size // 5,
            "budget_k": 2000 // size,
            "article": {"hybrid": {"hit@1": article[0], "hit@budget": article[1]}},
            "squad": {"hybrid": {"hit@1": squad[0], "hit@budget": squad[1]}},
        }

    sweep = [
        point(300, (0.78, 0.97), (0.67, 0.90)),
        point(600, (0.90, 0.97), (0.74, 0.90)),
        point(800, (0.90, 0.98), (0.75, 0.90)),
    ]
    rec = recommend(sweep)
    assert (rec["chunk_size"], rec["chunk_overlap"], rec["top_k"]) == (600, 120, 3)  # 800 is better by < MARGIN
    assert rec["best_quality"] == pytest.approx((0.90 + 0.98 + 0.75 + 0.90) / 4)
    sweep[1] = point(600, (0.85, 0.97), (0.70, 0.90))
    assert recommend(sweep)["chunk_size"] == 800


class _CountingEmbedder:
    def __init__(self):
        self.calls = 0

    def embed_query(self, text):
        self.calls += 1
        return [float(len(text))]

    def embed_documents(self, texts):
        return [[float(len(t))] for t in texts]


def test_query_cache_encodes_each_question_once():
    inner = _CountingEmbedder()
    cache = retrieval.QueryCache(inner)
    cache.prime(["a", "bb", "a"])
    assert cache.embed_query("bb") == [2.0] and inner.calls == 2
    assert cache.embed_documents(["xyz"]) == [[3.0]]


@pytest.mark.slow  # real builds and the real model in a bench process
def test_benchmark_end_to_end_on_real_parts(tmp_path):
    """One tiny run through the CLI: real index builds, real model, real SQuAD train text; one JSON object out."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")} | {
        "QA_DATA_DIR": str(retrieval.ROOT / ".qa")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "retrieval",
            "--json",
            "--squad-articles",
            "1",
            "--squad-questions",
            "15",
            "--chunk-sizes",
            "500",
            "--repeat",
            "1",
            "--out",
            str(out),
        ],
        cwd=retrieval.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert "CC BY-SA 4.0" in result["squad"]["credit"] and result["squad"]["questions"] == 15
    (point,) = result["sweep"]
    assert (point["chunk_size"], point["chunk_overlap"]) == (500, 100) and point["configured"]
    for name in ("article", "squad"):
        for mode in ("dense", "bm25", "hybrid"):
            m = point[name][mode]
            assert (
                0 <= m["hit@1"] <= m["hit@5"] <= 1
                and 0 <= m["mrr"] <= 1
                and len(m["ranks"]) == point[name]["questions"]
            )
            assert m["hit@budget"] == sum(r is not None and r <= point["budget_k"] for r in m["ranks"]) / len(
                m["ranks"]
            )
        assert point[name]["reachable"] == 1.0
    # The article questions are findable at all: far better than chance (1 / number of chunks).
    assert point["article"]["hybrid"]["hit@5"] > 0.8
    ingest = point["ingest"]
    assert ingest["chunks"] > 0 and ingest["build_chunks_per_s"] > 0 and ingest["encoder_chunks_per_s"] > 0
    assert ingest["up_to_date"] and 0 < ingest["rebuild_vs_full"] < 1
    assert point["budget_k"] == result["context_chars"] // 500
    assert result["recommended"]["chunk_size"] == 500
