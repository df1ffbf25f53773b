"""The one configuration object, read once at the entry point and passed down.

It lives in `index` because every layer may import `index` (ui -> qa -> index) and none may read the
environment on its own. Environment variables use the `QA_` prefix; an optional `.env` is read too.

The fields are declared in groups (one class each, their docstring the group's title); `Settings` inherits
them all, so every field stays a flat `settings.<field>` read from `QA_<FIELD>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


# Only the project's own .env is read, never one in the folder a command happens to run in: a received folder
# must not be able to send questions or documents to another server.
PROJECT_ENV = Path(__file__).resolve().parents[1] / ".env"


class PathSettings(BaseModel):
    """Where things live"""

    seeds_dir: Path = Field(Path("seeds"), description="the documents folder (.txt .md .html .pdf .docx, recursive)")
    data_dir: Path = Field(
        Path(".qa"), description="index, model cache, feedback log; git-ignored, user-only permissions"
    )
    store_dir: Path | None = Field(None, description="the index; default: <data_dir>/store")
    feedback_file: Path | None = Field(None, description="the feedback log; default: <data_dir>/feedback.jsonl")


class ChromaServerSettings(BaseModel):
    """Chroma server"""

    chroma_host: str | None = Field(
        None, description="when set, use a Chroma server through HttpClient (default: embedded Chroma)"
    )
    chroma_port: int = Field(8000, description="port of that server")
    chroma_lease_seconds: float = Field(
        30.0,
        description="with a Chroma server, one writer at a time holds a lease kept in the server, refreshed "
        "while it builds; a writer killed mid-build frees it after this long",
    )
    pointer_check_seconds: float = Field(
        1.0, description="how often a reader of a Chroma server looks for a switched pointer"
    )


class EmbeddingSettings(BaseModel):
    """Embedding and chunking"""

    embedding_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2", description="loaded from its PyPI package, offline"
    )
    embedding_dim: int = Field(384, description="its vector size, checked against the index")
    embed_batch_size: int = Field(64, description="chunks encoded per batch")
    chunk_size: int = Field(
        500, description="characters; chosen on bench/retrieval.py (hybrid hit@1 0.914) and qa eval"
    )
    chunk_overlap: int = Field(100, description="at most this many characters shared by neighbouring chunks")
    embed_int8: bool = Field(
        False,
        description="encode with torch dynamic int8 quantisation of the encoder's linear layers (part of "
        "the index's embedding path: a change asks for a rebuild; bench/encoder.py measures it)",
    )
    embed_skip_overlap: bool = Field(
        False,
        description="encode each chunk without the start it shares with the previous chunk of its "
        "document (part of the index's embedding path: a change asks for a rebuild; bench/encoder.py measures it)",
    )
    query_cache_size: int = Field(
        1024, description="query vectors remembered per process (a repeated question is not re-encoded)"
    )
    embed_onnx: bool = Field(
        True,
        description="encode questions and chunks with ONNX Runtime: the model exported once, same vectors as "
        "torch (an index built either way is searched either way), faster on CPU; false, or a model that is "
        "not Transformer + mean Pooling: torch",
    )
    onnx_cache_dir: Path | None = Field(
        None, description="where that export is kept (90 MB per model); default: ~/.cache/grounded-qa/onnx"
    )


class ReadingSettings(BaseModel):
    """Reading documents (budgets: a file over one is skipped with a message naming it)"""

    max_doc_chars: int = Field(5_000_000, description="characters of text per file (about a 2,500-page book)")
    max_extract_seconds: float = Field(
        120.0, description="per PDF or .docx file, in a worker process that is killed on overrun"
    )
    max_extract_mb: int = Field(2048, description="address-space limit of that worker (0: none)")
    watch_debounce_seconds: float = Field(
        1.0, description="watched folder: quiet time after the last change before a rebuild"
    )


class RetrievalSettings(BaseModel):
    """Retrieval"""

    retrieval_mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="hybrid: dense + BM25 + best sentence, fused by rank; or one of dense, bm25"
    )
    top_k: int = Field(4, description="passages retrieved and shown; their sentences are the answer candidates")
    rrf_k: int = Field(60, description="reciprocal rank fusion constant")
    max_query_chars: int = Field(2000, description="longer questions are refused with a clear message")


class AnswerSettings(BaseModel):
    """Answering"""

    answer_with: Literal["sentence", "words"] = Field(
        "sentence",
        description="what an answer is: sentence, the best-ranked retrieved sentence (the model only "
        "rewrites follow-ups and translates other languages), or words, the words the model picks from one of the best "
        "`read_sentences` sentences",
    )
    read_sentences: int = Field(
        5, description="how many of the best-ranked retrieved sentences the reader (the model) sees"
    )
    min_relevance: float = Field(
        0.43, description="abstain when no retrieved sentence scores this close to the question; chosen on `dev`"
    )
    tie_margin: float = Field(
        0.09,
        description="a runner-up sentence within this score of the best is shown and cited too (the "
        "ranking cannot tell them apart); chosen on `dev` (0.075 and 0.09 with the answer check), keeping the "
        "median answer under 200 characters",
    )
    verify_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="the packaged model that reads an answer scoring under `verify_below` and withdraws it when "
        "it says the sentences do not answer (qa/verify.py), and translates questions asked in another language (unless "
        '`llm` is openai); "" turns the check off (the answering model translates). The extractive backend never checks',
    )
    verify_model_path: Path | None = Field(None, description="any GGUF for the check; default: the packaged 1.5B")
    verify_below: float = Field(
        0.5, description="answers whose best sentence scores under this are checked by `verify_model`; chosen on `dev`"
    )
    verify_none: float = Field(
        0.1,
        description="the check withdraws an answer when the model's first reply token is NONE with at least this "
        "probability; chosen on `dev`",
    )


class LlmSettings(BaseModel):
    """Language model"""

    llm: Literal["local", "openai", "extractive"] = Field(
        "local", description="local llama.cpp, an OpenAI-compatible server, or none (extractive)"
    )
    llm_model: str = Field("qwen2.5-coder-0.5b", description='or "qwen2.5-coder-1.5b" (about 2.5x slower)')
    llm_model_path: Path | None = Field(None, description="any GGUF; default: the packaged Qwen2.5-Coder-0.5B-Instruct")
    llm_fallback: Literal["extractive", "none"] = Field(
        "extractive", description="what answers when the local model is missing"
    )
    llm_threads: int = Field(2, description="CPU threads of llama.cpp")
    llm_ctx: int = Field(
        4096, description="shared by the llm_parallel slots; the reader's prompt is a few hundred tokens"
    )
    llm_parallel: int = Field(2, description="answers in progress at once, across the page, the API and MCP")
    max_tokens: int = Field(160, description="longest model reply (the reader's replies are capped lower: 48 tokens)")
    temperature: float = Field(0.0, description="sampling temperature of the model")
    openai_base_url: str | None = Field(None, description="for llm=openai; the key comes from OPENAI_API_KEY")
    openai_model: str = Field("gpt-4o-mini", description="model name sent to that server")


class ServerSettings(BaseModel):
    """Serving"""

    host: str = Field("127.0.0.1", description="where qa serve listens (other addresses need --allow-remote)")
    port: int = Field(7860, description="its port")
    auth: str | None = Field(None, description='"user:password" for the page')
    allowed_hosts: str | None = Field(
        None, description='more names the page may be reached by (comma-separated), e.g. "qa.lan"'
    )
    api_key: str | None = Field(
        None, description="the OpenAI-compatible API and `qa mcp --http` want it as a Bearer token"
    )
    upload_max_mb: int = Field(20, description="largest file the page accepts")
    max_queue: int = Field(32, description="answers waiting at most; more are refused (429 on the API)")


GROUPS: tuple[type[BaseModel], ...] = (
    PathSettings,
    ChromaServerSettings,
    EmbeddingSettings,
    ReadingSettings,
    RetrievalSettings,
    AnswerSettings,
    LlmSettings,
    ServerSettings,
)


class Settings(*GROUPS, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=PROJECT_ENV, extra="ignore")

    # --- derived paths -------------------------------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "store"

    @property
    def models_path(self) -> Path:
        return self.data_dir / "models"

    @property
    def checks_answers(self) -> bool:
        """Whether answers are checked by `verify_model` (qa/verify.py): not when it is "" or without a model."""
        return bool(self.verify_model) and self.llm != "extractive"

    @property
    def feedback_path(self) -> Path:
        return self.feedback_file if self.feedback_file is not None else self.data_dir / "feedback.jsonl"

    def with_overrides(self, **values) -> "Settings":
        """A copy with the given fields replaced (None values are ignored), e.g. from CLI flags."""
        return self.model_copy(update={k: v for k, v in values.items() if v is not None})


def configuration_markdown() -> str:
    """docs/configuration.md: one table per group of settings, each with its variable, default and description
    (`python -m index.settings > docs/configuration.md`; a test keeps the two equal)."""
    rows = [
        "# Configuration",
        "",
        "Every setting is a `QA_*` environment variable (or a line of the project's `.env`), read once at start-up.",
        "This page is generated from `index/settings.py` by `python -m index.settings`.",
    ]
    for group in GROUPS:
        rows += ["", f"## {group.__doc__.strip()}", "", "| variable | default | meaning |", "| --- | --- | --- |"]
        for name, field in group.model_fields.items():
            default = field.default if field.default is not None else "unset"
            rows.append(f"| `QA_{name.upper()}` | `{default}` | {(field.description or '').replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def endpoints(settings: Settings) -> str:
    """One line saying where questions and passages (answers) and document text (index) are sent."""
    s = settings
    if s.llm == "openai":
        answers = (
            f"OpenAI-compatible server at {s.openai_base_url or 'https://api.openai.com/v1'} "
            "(questions and passages are sent there)"
        )
    elif s.llm == "extractive":
        answers = "extractive (no model)"
    else:
        answers = "local model on this computer"
    if s.chroma_host:
        index = f"Chroma server at http://{s.chroma_host}:{s.chroma_port} (document text is sent there)"
    else:
        index = f"embedded Chroma in {s.store_path}"
    return f"answers: {answers}; index: {index}"


__all__ = [
    "GROUPS",
    "PROJECT_ENV",
    "AnswerSettings",
    "ChromaServerSettings",
    "EmbeddingSettings",
    "LlmSettings",
    "PathSettings",
    "ReadingSettings",
    "RetrievalSettings",
    "ServerSettings",
    "Settings",
    "configuration_markdown",
    "endpoints",
]


if __name__ == "__main__":
    print(configuration_markdown(), end="")
