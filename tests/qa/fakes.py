"""Test doubles for unit tests of the answer logic (real-model tests live beside them)."""

from __future__ import annotations

import hashlib
import math

from qa.text import content_tokens, stem
from qa.types import Passage


def bow_embed(texts: list[str], dim: int = 256) -> list[list[float]]:
    """Bag-of-stems vectors: cosine tracks word overlap, deterministically, with no model."""
    out = []
    for t in texts:
        v = [0.0] * dim
        for tok in content_tokens(t):
            v[int(hashlib.md5(stem(tok).encode()).hexdigest(), 16) % dim] += 1.0
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        out.append([x / n for x in v])
    return out


def passages_from(text: str, chunk: int = 400) -> list[Passage]:
    """Consecutive passages over `text`, numbered from 1, with real offsets."""
    out = []
    for i, start in enumerate(range(0, len(text), chunk)):
        body = text[start : start + chunk]
        out.append(
            Passage(
                n=i + 1,
                chunk_id=f"c{i}",
                source="doc.txt",
                title="Doc",
                start=start,
                end=start + len(body),
                score=1.0 / (i + 1),
                text=body,
            )
        )
    return out
