"""The one configuration object, read once at the entry point and passed down.

It lives in `index` because every layer may import `index` (ui -> qa -> index) and none may read the
environment on its own. Environment variables use the `QA_` prefix; an optional `.env` is read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


# Only the project's own .env is read, never one in the folder a command happens to run in: a received folder
# must not be able to send questions or documents to another server.
PROJECT_ENV = Path(__file__).resolve().parents[1] / ".env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=PROJECT_ENV, extra="ignore")

    # --- where things live -------------------------------------------------------------------------
    seeds_dir: Path = Path("seeds")  # the documents folder (.txt .md .html .pdf .docx, recursive)
    data_dir: Path = Path(".qa")  # index, model cache, feedback log; git-ignored, user-only permissions
    store_dir: Path | None = None  # default: <data_dir>/store

    # --- Chroma ---------------------------------------------------------------------------------------
    chroma_host: str | None = None  # when set, use a Chroma server through HttpClient
    chroma_port: int = 8000  # port of that server
    # With a Chroma server, one writer at a time holds a lease kept in the server, refreshed while it builds;
    # a writer killed mid-build frees it after this long. Readers look for a switched pointer this often.
    chroma_lease_seconds: float = 30.0
    pointer_check_seconds: float = 1.0  # how often a reader of a Chroma server looks for a switched pointer

    # --- embedding and chunking ------------------------------------------------------------------------
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"  # loaded from its PyPI package, offline
    embedding_dim: int = 384  # its vector size, checked against the index
    embed_batch_size: int = 64  # chunks encoded per batch
    chunk_size: int = 500  # characters; chosen on bench/retrieval.py (hybrid hit@1 0.914) and qa eval
    chunk_overlap: int = 100  # at most this many characters shared by neighbouring chunks
    # How chunks are encoded (recorded in the index as its embedding path; a change asks for a rebuild):
    # int8 = torch dynamic int8 quantisation of the encoder's linear layers; skip_overlap = each chunk is encoded
    # without the start it shares with the previous chunk of its document (bench/encoder.py measures both).
    embed_int8: bool = False
    embed_skip_overlap: bool = False  # encode each chunk without the start it shares with the previous one
    query_cache_size: int = 1024  # query vectors remembered per process (a repeated question is not re-encoded)

    # --- reading documents (budgets: a file over one is skipped with a message naming it) ---------------------
    max_doc_chars: int = 5_000_000  # characters of text per file (about a 2,500-page book)
    max_extract_seconds: float = 120.0  # per PDF or .docx file, in a worker process that is killed on overrun
    max_extract_mb: int = 2048  # address-space limit of that worker (0: none)
    watch_debounce_seconds: float = 1.0  # watched folder: quiet time after the last change before a rebuild

    # --- retrieval ----------------------------------------------------------------------------------------
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"  # dense + BM25 + best sentence, fused by rank
    top_k: int = 4  # passages retrieved and shown; their sentences are the answer candidates
    rrf_k: int = 60  # reciprocal rank fusion constant
    max_query_chars: int = 2000  # longer questions are refused with a clear message

    # --- answering -------------------------------------------------------------------------------------------
    llm: Literal["local", "openai", "extractive"] = "local"  # local llama.cpp, an OpenAI-compatible server, or none
    llm_model: str = "qwen2.5-coder-0.5b"  # or "qwen2.5-coder-1.5b" (optional packages, about 2x slower)
    llm_model_path: Path | None = None  # any GGUF; default: the packaged Qwen2.5-Coder-0.5B-Instruct
    llm_fallback: Literal["extractive", "none"] = "extractive"  # what answers when the local model is missing
    llm_threads: int = 2  # CPU threads of llama.cpp
    llm_ctx: int = 4096  # shared by the llm_parallel slots; the reader's prompt is a few hundred tokens
    llm_parallel: int = 2  # answers in progress at once, across the page, the API and MCP
    max_tokens: int = 160  # longest model reply (the reader's replies are capped lower, at 48 tokens)
    # What an answer is: "sentence", the best-ranked retrieved sentence (the model only rewrites follow-ups and
    # other languages), or "words", the words the model picks from one of the best `read_sentences` sentences.
    answer_with: Literal["sentence", "words"] = "sentence"
    read_sentences: int = 5  # how many of the best-ranked retrieved sentences the reader (the model) sees
    min_relevance: float = 0.4  # abstain when no retrieved sentence scores this close to the question
    # A runner-up sentence within this score of the best is shown and cited too (the ranking cannot tell them
    # apart). Chosen on `dev`, the largest margin that keeps the median answer under 200 characters.
    tie_margin: float = 0.08
    temperature: float = 0.0  # sampling temperature of the model
    openai_base_url: str | None = None  # for llm=openai; the key comes from OPENAI_API_KEY
    openai_model: str = "gpt-4o-mini"  # model name sent to that server

    # --- serving -----------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"  # where qa serve listens (other addresses need --allow-remote)
    port: int = 7860  # its port
    auth: str | None = None  # "user:password"
    allowed_hosts: str | None = None  # more names the page may be reached by (comma-separated), e.g. "qa.lan"
    api_key: str | None = None  # QA_API_KEY: the OpenAI-compatible API and `qa mcp --http` want it as a Bearer token
    upload_max_mb: int = 20  # largest file the page accepts
    max_queue: int = 32  # answers waiting at most; more are refused (429 on the API)
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


def configuration_markdown() -> str:
    """docs/configuration.md: every setting with its variable, default and the comment beside it in this file
    (`python -m index.settings > docs/configuration.md`; a test keeps the two equal)."""
    import inspect
    import re

    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        text = line.strip()
        if text.startswith("# ---"):
            pending = []
        elif text.startswith("#"):
            pending.append(text.lstrip("# ").strip())
        elif m := re.match(r"(\w+): [^=]+= .*?(?:  # (.*))?$", text):
            note = " ".join([*pending, m.group(2) or ""]).strip()
            notes[m.group(1)] = note.removeprefix("... ").strip()
            pending = []
    rows = ["# Configuration", "",
            "Every setting is a `QA_*` environment variable (or a line of the project's `.env`), read once at "
            "start-up.", "This page is generated from `index/settings.py` by `python -m index.settings`.", "",
            "| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "unset"
        rows.append(f"| `QA_{name.upper()}` | `{default}` | {notes.get(name, '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def endpoints(settings: Settings) -> str:
    """One line saying where questions and passages (answers) and document text (index) are sent."""
    s = settings
    if s.llm == "openai":
        answers = (f"OpenAI-compatible server at {s.openai_base_url or 'https://api.openai.com/v1'} "
                   "(questions and passages are sent there)")
    elif s.llm == "extractive":
        answers = "extractive (no model)"
    else:
        answers = "local model on this computer"
    if s.chroma_host:
        index = f"Chroma server at http://{s.chroma_host}:{s.chroma_port} (document text is sent there)"
    else:
        index = f"embedded Chroma in {s.store_path}"
    return f"answers: {answers}; index: {index}"


__all__ = ["PROJECT_ENV", "Settings", "configuration_markdown", "endpoints"]


if __name__ == "__main__":
    print(configuration_markdown(), end="")
