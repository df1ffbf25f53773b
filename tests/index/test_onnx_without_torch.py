"""A process whose model has a checked ONNX export cached never imports torch, sentence-transformers or
transformers: the export is run with the folder's tokenizer.json and checked against the reference vectors saved
at export time; a missing, corrupt or disagreeing reference file takes the torch path. Real model, real ONNX
Runtime, temporary caches."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import onnx_encoder
from index.embed import QueryEncoder, get_embedder, model_location
from index.onnx_encoder import PROBE_TEXTS, fingerprint, load_onnx_encoder, model_preprocess, refs_path
from index.onnx_saved import folder_fingerprint, folder_stack, load_saved_encoder, tokenizer_preprocess
from index.settings import Settings
from tests.index.test_embed import QUERIES

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers", "langchain_huggingface")


@pytest.fixture(scope="module")
def model():
    return get_embedder(Settings(_env_file=None, embed_onnx=False))._client


def _location() -> str:
    return model_location(Settings(_env_file=None).embedding_model)


@pytest.fixture(scope="module")
def warm_cache(model, tmp_path_factory) -> Path:
    """A cache folder with the model's export and its reference vectors."""
    cache = tmp_path_factory.mktemp("warm") / "onnx"
    assert load_onnx_encoder(model, _location(), cache, threads=1) is not None
    return cache


def _copy(cache: Path, tmp_path: Path) -> Path:
    """The warm cache for one test: the export hard-linked (90 MB), the reference file copied."""
    mine = tmp_path / "onnx"
    mine.mkdir()
    for path in cache.iterdir():
        if path.suffix == ".onnx":
            os.link(path, mine / path.name)
        else:
            (mine / path.name).write_bytes(path.read_bytes())
    return mine


def _encode(model, texts) -> np.ndarray:
    return model.encode([t.replace("\n", " ") for t in texts], normalize_embeddings=True)


def test_the_folder_gives_the_key_and_the_tokens_of_the_loaded_model(model):
    stack = folder_stack(_location())
    assert stack == {"modules": ["Transformer", "Pooling", "Normalize"], "max_seq_length": 256, "do_lower_case": False}
    assert folder_fingerprint(_location(), stack) == fingerprint(model, _location())
    ours, theirs = tokenizer_preprocess(_location(), stack), model_preprocess(model)
    for texts in (QUERIES, list(PROBE_TEXTS), ["one"], ["  spaced\tout  ", "中巴"]):
        a, b = ours(texts), theirs(texts)
        assert set(a) == set(b) == {"input_ids", "attention_mask", "token_type_ids"}
        assert all(np.array_equal(a[k], b[k]) for k in b)  # truncated at 256, padded to the longest


def test_a_warm_process_never_imports_torch_and_gives_the_vectors_of_encode(model, warm_cache, tmp_path, seeds_dir):
    child = r"""
import json, sys
from pathlib import Path
from index.build import build_index
from index.embed import get_embedder
from index.onnx_encoder import set_thread_budget
from index.reader import open_index
from index.settings import Settings

seeds, data, cache, queries = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings = Settings(_env_file=None, seeds_dir=Path(seeds), data_dir=Path(data), onnx_cache_dir=Path(cache))
report = build_index(settings, progress=False)
embedder = get_embedder(settings)
top = open_index(settings).dense("Who co-chaired the dialogue?", 1)[0][0].text
documents = embedder.embed_documents(queries)
set_thread_budget(1)  # a rebuild in the server: one lane
print(json.dumps({
    "embedded": report.embedded,
    "onnx": type(embedder.onnx).__name__,
    "queries": [embedder.embed_query(q) for q in queries],
    "documents": documents,
    "one_lane": embedder.embed_documents(queries),
    "top": top,
    "loaded": [m for m in %r if m in sys.modules],
}))
""" % (HEAVY,)
    cache = _copy(warm_cache, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", child, str(seeds_dir), str(tmp_path / "data"), str(cache), json.dumps(QUERIES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [] and out["onnx"] == "OnnxEncoder" and out["embedded"] > 0
    assert "co-chaired by Deputy Prime Minister" in out["top"]
    reference = _encode(model, QUERIES)
    for name in ("queries", "documents", "one_lane"):
        vectors = np.array(out[name])
        assert vectors.shape == reference.shape
        assert (vectors * reference).sum(axis=1).min() > 0.9999, name


def test_the_embedder_loads_torch_only_when_asked(warm_cache, tmp_path):
    embedder = get_embedder(Settings(_env_file=None, onnx_cache_dir=_copy(warm_cache, tmp_path)))
    assert embedder.onnx is not None and embedder._encode_one is embedder.onnx and embedder._loaded is None
    assert embedder.embed_documents([]) == [] and embedder._loaded is None
    assert isinstance(embedder.torch_query, QueryEncoder) and embedder._loaded is not None  # for benchmarks
    assert type(embedder._client).__name__ == "SentenceTransformer"
    assert embedder._encode_one is embedder.onnx


def test_a_bad_or_missing_reference_file_takes_the_torch_path(model, warm_cache, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(onnx_encoder, "_warned", set())
    cache = _copy(warm_cache, tmp_path)
    refs = refs_path(next(cache.glob("*.onnx")))
    good = refs.read_text()
    with caplog.at_level(logging.WARNING, logger="index.onnx_encoder"):
        refs.write_text('{"texts": ["truncated')
        assert load_saved_encoder(_location(), cache, threads=1) is None
        embedder = get_embedder(Settings(_env_file=None, onnx_cache_dir=cache))  # torch path, checked
        assert embedder.onnx is not None and embedder._loaded is not None
        assert json.loads(refs.read_text()) == json.loads(good)  # written again by the torch path
        assert load_saved_encoder(_location(), cache, threads=1) is not None

        flipped = json.loads(good)
        flipped["vectors"] = (-np.array(flipped["vectors"])).tolist()
        refs.write_text(json.dumps(flipped))
        assert load_saved_encoder(_location(), cache, threads=1) is None

        refs.unlink()  # an export from before reference files: silently the torch path, which writes one
        assert load_saved_encoder(_location(), cache, threads=1) is None
        assert load_onnx_encoder(model, _location(), cache, threads=1) is not None
        assert load_saved_encoder(_location(), cache, threads=1) is not None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("checked without torch, loading torch" in m for m in messages)
    assert "JSONDecodeError" in messages[0] and "differ from the saved ones" in messages[1]
    saved = load_saved_encoder(_location(), cache, threads=1)
    assert (saved.encode(QUERIES) * _encode(model, QUERIES)).sum(axis=1).min() > 0.9999


def test_a_folder_the_torch_free_path_cannot_read_takes_the_torch_path(warm_cache, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    source = Path(_location())
    for name in ("modules.json", "tokenizer.json", "config.json", "model.safetensors"):
        os.link(source / name, folder / name)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_bytes((source / "1_Pooling" / "config.json").read_bytes())
    (folder / "sentence_bert_config.json").write_text("{}")
    with pytest.raises(ValueError, match="max_seq_length"):
        folder_stack(str(folder))
    assert load_saved_encoder(str(folder), warm_cache, threads=1) is None
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(ValueError, match="pooling"):
        folder_stack(str(folder))
