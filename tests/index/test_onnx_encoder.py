"""Questions are encoded by the model exported to ONNX Runtime: the same vectors as torch's `encode()`, an export
cached on disk and reused, and torch whenever the export or its file fails. Real model, real ONNX Runtime."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from index import onnx_encoder
from index.embed import QueryEncoder, get_embedder, model_location
from index.onnx_encoder import OnnxEncoder, fingerprint, load_onnx_encoder, unsupported
from index.settings import Settings
from tests.index.test_embed import QUERIES


@pytest.fixture(scope="module")
def model():
    return get_embedder(Settings(_env_file=None))._client


def _location() -> str:
    return model_location(Settings(_env_file=None).embedding_model)


def _min_cosine(vectors, model, texts) -> float:
    reference = model.encode([t.replace("\n", " ") for t in texts], normalize_embeddings=True)
    return float((np.asarray(vectors) * reference).sum(axis=1).min())


def test_questions_take_the_onnx_path_and_get_the_vectors_of_encode():
    embedder = get_embedder(Settings(_env_file=None))
    assert isinstance(embedder._encode_one, OnnxEncoder)
    served = np.array([embedder.embed_query(q) for q in QUERIES])
    slow = np.array([embedder._inner.embed_query(q) for q in QUERIES])  # SentenceTransformer.encode
    assert served.shape == slow.shape == (len(QUERIES), 384)
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert (served * slow).sum(axis=1).min() > 0.9999  # short, long, Urdu, Chinese, German, Greek, emoji


def test_a_long_question_is_cut_where_sentence_transformers_cuts_it(model):
    long = QUERIES[-1]
    assert len(model.tokenizer(long)["input_ids"]) > 2 * model.max_seq_length == 512
    encoder = get_embedder(Settings(_env_file=None))._encode_one
    cut = model.tokenizer.decode(model.tokenizer(long)["input_ids"][1 : model.max_seq_length - 1])
    same = np.array([encoder(long), encoder(cut)])
    assert (same[0] * same[1]).sum() > 0.9999  # only the first 256 tokens count
    assert _min_cosine([encoder(long)], model, [long]) > 0.9999
    batch = encoder.encode(["short one", long, "中巴战略对话是什么时候举行的？"])  # padded together
    assert _min_cosine(batch, model, ["short one", long, "中巴战略对话是什么时候举行的？"]) > 0.9999


def test_the_export_is_written_once_then_reused(model, tmp_path, monkeypatch):
    first = load_onnx_encoder(model, _location(), tmp_path, threads=1)
    assert first is not None and first.path.parent == tmp_path
    key = fingerprint(model, _location())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.onnx", f"{key}.refs.json"]  # no temp file left
    stat = first.path.stat()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_encoder, "export", no_export)
    again = load_onnx_encoder(model, _location(), tmp_path, threads=1)
    assert again is not None and again.path == first.path
    assert (again.path.stat().st_mtime_ns, again.path.stat().st_ino) == (stat.st_mtime_ns, stat.st_ino)
    assert _min_cosine(again.encode(QUERIES[:4]), model, QUERIES[:4]) > 0.9999


def test_a_corrupt_export_is_replaced(model, tmp_path):
    path = tmp_path / f"{fingerprint(model, _location())}.onnx"
    path.write_bytes(b"not an onnx file" * 100)
    encoder = load_onnx_encoder(model, _location(), tmp_path, threads=1)
    assert encoder is not None and path.stat().st_size > 50_000_000
    assert _min_cosine(encoder.encode(QUERIES), model, QUERIES) > 0.9999


def test_a_new_export_removes_the_models_older_ones_and_keeps_other_models(model, tmp_path):
    current = fingerprint(model, _location())
    where = current.split("-", 1)[0]
    older = tmp_path / f"{where}-{'0' * 24}.onnx"  # the same model, exported by other libraries or weights
    older_refs = tmp_path / f"{where}-{'0' * 24}.refs.json"
    other = tmp_path / f"{'f' * 8}-{'1' * 24}.onnx"  # another model
    other_refs = tmp_path / f"{'f' * 8}-{'1' * 24}.refs.json"
    older.write_bytes(b"old export")
    older_refs.write_text("{}")
    other.write_bytes(b"other model")
    other_refs.write_text("{}")
    encoder = load_onnx_encoder(model, _location(), tmp_path, threads=1)
    assert encoder is not None and encoder.path.name == f"{current}.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{current}.onnx", f"{current}.refs.json", other.name, other_refs.name]
    )
    older.write_bytes(b"old export")  # reusing an export prunes nothing
    assert load_onnx_encoder(model, _location(), tmp_path, threads=1) is not None and older.exists()


def test_a_failing_export_falls_back_to_torch_and_says_so_once(tmp_path, monkeypatch, caplog):
    import torch

    def broken_export(model, args, f, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    monkeypatch.setattr(onnx_encoder, "_warned", set())
    cache = tmp_path / "onnx"
    cache.mkdir()
    settings = Settings(_env_file=None, onnx_cache_dir=cache)
    model = get_embedder(Settings(_env_file=None))._client
    (cache / f"{fingerprint(model, _location())}.onnx").write_bytes(b"corrupt")  # and the cached file is bad
    with caplog.at_level(logging.WARNING, logger="index.onnx_encoder"):
        embedder = get_embedder(settings)
        assert load_onnx_encoder(model, _location(), cache, threads=1) is None
    assert isinstance(embedder._encode_one, QueryEncoder)
    assert [r.getMessage() for r in caplog.records] == [
        "ONNX Runtime encoder unavailable, encoding with torch (RuntimeError: exporter crashed)"
    ]
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert _min_cosine([embedder.embed_query(q) for q in QUERIES], model, QUERIES) > 0.9999


def test_an_unwritable_cache_falls_back_to_torch(model, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    assert load_onnx_encoder(model, _location(), blocked / "onnx", threads=1) is None


def test_only_the_standard_stack_takes_the_onnx_path(model):
    import torch

    assert unsupported(model) is None
    cls = copy.deepcopy(model)
    cls[1].pooling_mode = "cls"
    assert "pooling 'cls'" in unsupported(cls)
    assert "modules" in unsupported(torch.nn.Sequential(model[0]))  # no pooling
    int8 = get_embedder(Settings(_env_file=None, embed_int8=True))
    assert isinstance(int8._encode_one, QueryEncoder) and int8.onnx is None
    assert unsupported(int8._client) == "the model is quantised"


def test_the_settings_choose_the_path_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_EMBED_ONNX", "false")
    monkeypatch.setenv("QA_ONNX_CACHE_DIR", str(tmp_path / "elsewhere"))
    from_env = Settings(_env_file=None)
    assert from_env.embed_onnx is False and from_env.onnx_cache_dir == tmp_path / "elsewhere"
    assert isinstance(get_embedder(from_env)._encode_one, QueryEncoder)
    assert not (tmp_path / "elsewhere").exists()
    monkeypatch.delenv("QA_EMBED_ONNX")
    chosen = get_embedder(Settings(_env_file=None, onnx_cache_dir=tmp_path / "chosen"))
    assert isinstance(chosen._encode_one, OnnxEncoder) and chosen._encode_one.path.parent == tmp_path / "chosen"


def test_documents_take_the_onnx_path_with_the_vectors_of_encode(model):
    embedder = get_embedder(Settings(_env_file=None))
    texts = QUERIES + ["A chunk of text.\nWith a line break. " * 12, "x", "Trade grew."] * 3  # lengths 1..2000+
    vectors = np.array(embedder.embed_documents(texts))
    assert vectors.shape == (len(texts), 384)
    assert _min_cosine(vectors, model, texts) > 0.9999  # in the callers' order, whatever the batches were
    assert embedder.embed_documents([]) == []
    assert embedder.onnx.encode_documents(["one"]).shape == (1, 384)


def test_an_index_built_by_one_path_is_searched_by_the_other(settings: Settings):
    from index.build import build_index
    from index.reader import index_status, open_index

    torch_only = settings.with_overrides(embed_onnx=False)
    assert get_embedder(torch_only).onnx is None and get_embedder(settings).onnx is not None
    question = "Who co-chaired the dialogue?"
    for built_by in (settings, torch_only):
        build_index(built_by, force=True, progress=False)
        results = []
        for searched_by in (settings, torch_only):
            assert index_status(searched_by)["embedding_path"] == "fp32"  # the same vectors: no rebuild asked
            results.append(open_index(searched_by).dense(question, 3))
        assert "co-chaired by Deputy Prime Minister" in results[0][0][0].text
        assert [c.id for c, _ in results[0]] == [c.id for c, _ in results[1]]
        assert np.allclose([s for _, s in results[0]], [s for _, s in results[1]], atol=1e-4)


def test_documents_keep_to_the_callers_thread_budget(model, tmp_path, monkeypatch):
    import threading

    import torch

    encoder = load_onnx_encoder(model, _location(), tmp_path, threads=1, workers=2)
    texts = [f"Sentence number {i} about the dialogue, of some length." * (1 + i % 3) for i in range(12)]
    expected = encoder.encode_documents(texts)
    used: set[str] = set()
    real = encoder.encode

    def recording(batch, on=None):
        used.add(threading.current_thread().name)
        return real(batch, on=on)

    monkeypatch.setattr(encoder, "encode", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what a rebuild in the server does to leave a core to questions
    try:
        one_lane = encoder.encode_documents(texts)
    finally:
        torch.set_num_threads(before)
    assert len(used) == 1
    assert (one_lane * expected).sum(axis=1).min() > 0.9999  # same vectors, same order
