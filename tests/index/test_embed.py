"""How chunks are encoded: int8 and overlap-free encoding are recorded in the index, and a mismatch asks for a
rebuild; identical queries are encoded once."""

from __future__ import annotations

import numpy as np
import pytest

from index.build import build_index
from index.embed import Embedder, get_embedder
from index.reader import index_status, open_index
from index.settings import Settings
from index.types import IndexMismatch
from tests.index.test_build import CountingEmbedder


def test_the_embedding_path_is_recorded_and_another_path_asks_for_a_rebuild(settings: Settings):
    first = build_index(settings, progress=False)
    assert index_status(settings)["embedding_path"] == "fp32"
    int8 = settings.with_overrides(embed_int8=True)
    with pytest.raises(IndexMismatch, match="embedding_path 'fp32' \\(settings say 'int8'\\).*qa index rebuild"):
        open_index(int8)
    counting = CountingEmbedder(get_embedder(int8))
    again = build_index(int8, progress=False, embedder=counting)  # a plain build notices it
    assert not again.up_to_date and again.embedded == again.chunks == first.chunks  # no fp32 vector reused
    reader = open_index(int8)
    assert index_status(int8)["embedding_path"] == "int8"
    assert "co-chaired by Deputy Prime Minister" in reader.dense("Who co-chaired the dialogue?", 1)[0][0].text


def test_int8_vectors_stay_close_to_fp32(settings: Settings):
    texts = ["The dialogue was co-chaired by the two foreign ministers.", "Trade through the Khunjerab Pass grew."]
    fp32 = np.array(get_embedder(settings).embed_documents(texts))
    int8 = np.array(get_embedder(settings.with_overrides(embed_int8=True)).embed_documents(texts))
    cosines = (fp32 * int8).sum(axis=1)
    assert cosines.min() > 0.9 and not np.allclose(fp32, int8)  # quantised, and still the same meaning


def test_skip_overlap_encodes_each_character_once_and_still_finds_the_passages(settings: Settings):
    # short sentences: the splitter carries up to chunk_overlap characters of them into the next chunk
    (settings.seeds_dir / "minutes.txt").write_text(
        "Minutes\n\n"
        + " ".join(
            f"Item {i} on the {w} was approved." for i, w in enumerate(["bridge", "canal", "school", "clinic"] * 15)
        )
    )
    skip = settings.with_overrides(embed_skip_overlap=True)
    counting = CountingEmbedder(get_embedder(skip))
    report = build_index(skip, progress=False, embedder=counting)
    reader = open_index(skip, embedder=counting)
    chunks = list(reader.chunks.values())
    overlap = sum(max(0, a.end - b.start) for a, b in zip(chunks, chunks[1:]) if a.source == b.source)
    assert overlap > 5 * settings.chunk_overlap // 2
    assert report.embedded == len(counting.texts) == len(chunks)
    assert sum(len(t) for t in counting.texts) <= sum(len(c.text) for c in chunks) - overlap  # encoded once
    assert all(any(c.text.endswith(t) for c in chunks) for t in counting.texts)  # each is the end of a chunk
    assert index_status(skip)["embedding_path"] == "fp32+no-overlap"
    assert "co-chaired by Deputy Prime Minister" in reader.dense("Who co-chaired the dialogue?", 1)[0][0].text
    with pytest.raises(IndexMismatch, match="no-overlap"):
        open_index(settings)


class _Inner:
    _client = None

    def __init__(self):
        self.queries: list[str] = []

    def embed_query(self, text):
        self.queries.append(text)
        return [float(len(text)), 1.0]

    def embed_documents(self, texts):
        return [[float(len(t)), 0.0] for t in texts]


def test_a_repeated_query_is_encoded_once_and_the_cache_is_bounded():
    inner = _Inner()
    embedder = Embedder(inner, cache_size=2)
    assert embedder.embed_query("a") == embedder.embed_query("a") == [1.0, 1.0]
    embedder.embed_query("bb")
    embedder.embed_query("ccc")  # "a" falls out
    embedder.embed_query("a")
    assert inner.queries == ["a", "bb", "ccc", "a"]
    embedder.embed_query("a")[0] = 99.0  # callers cannot change the cached vector
    assert embedder.embed_query("a") == [1.0, 1.0]
    assert embedder.embed_documents(["xy"]) == [[2.0, 0.0]]


QUERIES = [
    "Who co-chaired the dialogue?",
    "When did Beyonce start becoming popular?",
    "2026",
    "  what   about\nline breaks and  spaces?  ",
    "پاکستان اور چین کے درمیان اسٹریٹجک مذاکرات کب ہوئے؟",  # Urdu
    "中巴战略对话是什么时候举行的？",  # Chinese
    "Wann wurde der Khunjerab-Pass für den Handel geöffnet?",  # German
    "Ποιος ηγήθηκε των συνομιλιών;",  # Greek
    "URAAN 🚀 Pakistan!!! ???",
    " ".join(["The long question repeats itself past the model's 256-token limit, so it is truncated."] * 30),
]


@pytest.mark.parametrize("int8", [False, True])
def test_the_single_query_path_gives_the_vectors_of_encode(int8: bool):
    embedder = get_embedder(Settings(embed_int8=int8))
    assert type(embedder.torch_query).__name__ == "QueryEncoder"  # served when ONNX Runtime is off or fails
    fast = np.array([embedder.torch_query(q) for q in QUERIES])
    slow = np.array([embedder._inner.embed_query(q) for q in QUERIES])  # SentenceTransformer.encode
    assert fast.shape == slow.shape == (len(QUERIES), 384)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert (fast * slow).sum(axis=1).min() > 0.9999
