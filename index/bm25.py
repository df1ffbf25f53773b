"""Keyword search over the same chunks as the vectors: built and saved with each index, loaded per process.

Names, numbers and rare words ("Khunjerab", "2026", "URAAN") are where embeddings are weakest and BM25 is
strongest, which is why hybrid retrieval fuses both.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np

_TOKEN = re.compile(r"\w+", re.UNICODE)
IDS_FILE = "chunk_ids.json"
# Sentence ends (as the splitter sees them) and line breaks (a headline or subtitle line is its own sentence).
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+|\n+")
# BM25 at sentence level: k1 saturates repeats, b normalizes by length against a typical sentence's token count.
SENTENCE_K1 = 0.9
SENTENCE_B = 0.75
SENTENCE_AVG_TOKENS = 20


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed word tokens without English stopwords ("dates" finds "date"; "2.0" keeps its "2").

    Stemming lifted article hit@1 by 3-5 points at every chunk size measured; a larger stopword list lowered it.
    """
    stop = _stopwords()
    return _stemmer().stemWords([t for t in _TOKEN.findall(text.lower()) if t not in stop])


def sentences(text: str) -> list[str]:
    """The text's sentences and lines, stripped, in order."""
    return [s for s in (part.strip() for part in _SENTENCE.split(text)) if s]


def best_sentence_score(weights: dict[str, float], text: str) -> float:
    """BM25 of the text's best-matching sentence, with the chunk index's idf (`Bm25Index.idf`) as term weights.

    A chunk holds several sentences; the one that answers usually shares most of the question's rare words,
    while a chunk that merely mentions them across different sentences scores lower here than in chunk BM25.
    """
    best = 0.0
    for sentence in sentences(text):
        tokens = tokenize(sentence)
        if not tokens:
            continue
        norm = SENTENCE_K1 * (1 - SENTENCE_B + SENTENCE_B * len(tokens) / SENTENCE_AVG_TOKENS)
        score = 0.0
        for token, weight in weights.items():
            tf = tokens.count(token)
            if tf:
                score += weight * tf * (SENTENCE_K1 + 1) / (tf + norm)
        best = max(best, score)
    return best


class Bm25Index:
    """A bm25s index whose row i is chunk `ids[i]`."""

    def __init__(self, model, ids: list[str]):
        self._model = model
        self.ids = ids

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> "Bm25Index":
        import bm25s

        model = bm25s.BM25()
        # bm25s needs at least one token per row; "" is its placeholder for an empty row.
        model.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(model, list(ids))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._model.save(str(folder), show_progress=False)
        (folder / IDS_FILE).write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Bm25Index":
        import bm25s

        model = bm25s.BM25.load(str(folder), show_progress=False)
        ids = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
        if not isinstance(ids, list) or len(ids) != int(model.scores["num_docs"]):
            raise ValueError(f"{folder / IDS_FILE} does not match the BM25 index")
        return cls(model, ids)

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """BM25 (Lucene) idf of each distinct token that some chunk holds; tokens in no chunk are left out."""
        vocab, indptr = self._model.vocab_dict, self._model.scores["indptr"]
        n = int(self._model.scores["num_docs"])
        out = {}
        for token in dict.fromkeys(tokens):
            i = vocab.get(token) if token else None
            df = int(indptr[i + 1] - indptr[i]) if i is not None else 0
            if df:
                out[token] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Best k (chunk id, score), only chunks sharing at least one word with the query."""
        token_ids = self._model.get_tokens_ids(tokenize(query))
        if not token_ids or k <= 0:
            return []
        scores = self._model.get_scores_from_ids(token_ids)
        return [(self.ids[i], float(scores[i])) for i in top_k(scores, k)]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k best positive scores, best first, ties in row order: what a stable argsort of all rows gives,
    without sorting them all (at 1M chunks the full sort cost ~60 ms a query; this selects, then sorts a few)."""
    if k <= 0 or not len(scores):
        return np.empty(0, dtype=np.int64)
    if k < len(scores):
        kth = scores[np.argpartition(-scores, k - 1)[:k]].min()
        rows = np.flatnonzero(scores >= kth) if kth > 0 else np.flatnonzero(scores > 0)  # ties at the k-th stay
    else:
        rows = np.flatnonzero(scores > 0)
    return rows[np.lexsort((rows, -scores[rows]))][:k]


__all__ = ["Bm25Index", "best_sentence_score", "sentences", "tokenize", "top_k"]
