"""The one configuration object, read once at the entry point and passed down.

It lives in `index` because every layer may import `index` (ui -> qa -> index) and none may read the
environment on its own. Environment variables use the `QA_` prefix; an optional `.env` is read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------------------------------
    seeds_dir: Path = Path("seeds")
    data_dir: Path = Path(".qa")  # git-ignored; user-only permissions
    store_dir: Path | None = None  # default: <data_dir>/store

    # --- Chroma ---------------------------------------------------------------------------------------
    chroma_host: str | None = None  # when set, use a Chroma server through HttpClient
    chroma_port: int = 8000
    # With a Chroma server, one writer at a time holds a lease kept in the server, refreshed while it builds;
    # a writer killed mid-build frees it after this long. Readers look for a switched pointer this often.
    chroma_lease_seconds: float = 30.0
    pointer_check_seconds: float = 1.0

    # --- embedding and chunking ------------------------------------------------------------------------
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dim: int = 384
    embed_batch_size: int = 64
    chunk_size: int = 500  # characters; chosen on bench/retrieval.py (hybrid hit@1 0.914) and qa eval
    chunk_overlap: int = 100
    # How chunks are encoded (recorded in the index as its embedding path; a change asks for a rebuild):
    # int8 = torch dynamic int8 quantisation of the encoder's linear layers; skip_overlap = each chunk is encoded
    # without the start it shares with the previous chunk of its document (bench/encoder.py measures both).
    embed_int8: bool = False
    embed_skip_overlap: bool = False
    query_cache_size: int = 1024  # query vectors remembered per process (a repeated question is not re-encoded)

    # --- retrieval ----------------------------------------------------------------------------------------
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    top_k: int = 4
    rrf_k: int = 60
    max_query_chars: int = 2000

    # --- answering -------------------------------------------------------------------------------------------
    llm: Literal["local", "openai", "extractive"] = "local"
    llm_model: str = "qwen2.5-coder-0.5b"  # or "qwen2.5-coder-1.5b" (optional packages, about 2x slower)
    llm_model_path: Path | None = None  # any GGUF; default: the packaged Qwen2.5-Coder-0.5B-Instruct
    llm_fallback: Literal["extractive", "none"] = "extractive"
    llm_threads: int = 2
    llm_ctx: int = 6144  # shared by llm_parallel slots; each must hold the documents-mode prompt
    llm_parallel: int = 2
    max_tokens: int = 160
    context_chars: int = 900  # how much passage text the model reads (its best sentences); prefill is slow
    # Documents mode: when the corpus's prose is at most this long, it is the model's fixed (prompt-cached)
    # system prompt and only `hint_chars` of best sentences are added per question; 0 turns it off.
    documents_prompt_chars: int = 8000  # ~1,700 tokens: fits a slot (llm_ctx / llm_parallel) with room to answer
    hint_chars: int = 160  # the best sentence (sentences here are ~150-250 characters)
    # ... plus the runner-up when it scores within this of the best: qa eval (0.5B) accuracy 0.768 -> 0.893,
    # false abstention 0.071 -> 0.018, support 0.914 -> 0.964, for TTFT p50 0.84 -> 0.94 s (always both: 1.14 s)
    hint_margin: float = 0.3
    reserve_k: int = 4  # documents mode: more passages that may support the answer; shown only when cited
    temperature: float = 0.0
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"

    # --- serving -----------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str | None = None  # "user:password"
    upload_max_mb: int = 20
    max_queue: int = 32
    feedback_file: Path | None = None  # default: <data_dir>/feedback.jsonl

    # --- derived paths -------------------------------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "store"

    @property
    def models_path(self) -> Path:
        return self.data_dir / "models"

    @property
    def feedback_path(self) -> Path:
        return self.feedback_file if self.feedback_file is not None else self.data_dir / "feedback.jsonl"

    def with_overrides(self, **values) -> "Settings":
        """A copy with the given fields replaced (None values are ignored), e.g. from CLI flags."""
        return self.model_copy(update={k: v for k, v in values.items() if v is not None})


__all__ = ["Settings"]
