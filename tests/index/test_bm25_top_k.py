"""BM25's top-k selection returns what a stable sort of every row returns."""

from __future__ import annotations

import numpy as np
import pytest

from index.bm25 import Bm25Index, top_k


def _reference(scores: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]


@pytest.mark.parametrize("seed", range(20))
def test_top_k_equals_a_stable_sort_of_all_rows(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    scores = rng.choice([0.0, 0.5, 1.25, 2.0, 3.5], size=n).astype(np.float32)  # many ties, many zeros
    noisy = rng.random(n) < 0.3
    scores[noisy] += rng.random(int(noisy.sum())).astype(np.float32)  # and some distinct ones
    for k in (1, 2, 5, 20, n - 1, n, n + 3):
        if k >= 1:
            assert top_k(scores, k).tolist() == _reference(scores, k), (n, k)


def test_top_k_edges():
    assert top_k(np.zeros(10, dtype=np.float32), 3).tolist() == []
    assert top_k(np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32), 3).tolist() == [1, 3]
    assert top_k(np.array([2.0, 1.0], dtype=np.float32), 0).tolist() == []
    assert top_k(np.array([], dtype=np.float32), 4).tolist() == []


def test_search_ranks_as_before_with_repeated_texts():
    texts = ["the Khunjerab Pass opened to trade", "trade grew", "the pass", "Khunjerab trade trade"] * 5
    index = Bm25Index.build([f"c{i}" for i in range(len(texts))], texts)
    hits = index.search("Khunjerab trade", 6)
    scores = index._model.get_scores_from_ids(index._model.get_tokens_ids(["khunjerab", "trade"]))
    assert [h[0] for h in hits] == [f"c{i}" for i in _reference(scores, 6)]
    assert hits[0][0] == "c3" and hits[1][0] == "c7"  # equal texts: the earlier row first
