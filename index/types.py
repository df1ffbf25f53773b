"""Plain data passed between the index stages. Offsets always index into `Document.text` (the cleaned text)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the seeds folder, with forward slashes
    title: str
    subtitle: str
    text: str  # cleaned text: boilerplate removed; what chunk offsets point into
    sha256: str  # of the cleaned text
    pages: tuple[int, ...] = ()  # PDF: offset in `text` where page i+1 starts (index.formats.page_at); () otherwise


@dataclass(frozen=True)
class Chunk:
    id: str  # deterministic: hash of source + offsets + text
    source: str
    title: str
    start: int  # Document.text[start:end] == text
    end: int
    text: str
    page: int | None = None  # PDF: 1-based page of `start`; None for other formats


@dataclass
class BuildReport:
    collection: str
    documents: int
    chunks: int
    embedded: int  # chunks whose vectors were computed in this build (identical texts count once)
    reused: int  # chunks whose vectors were copied from the previous index (identical texts count once)
    removed_documents: int
    skipped: list[str] = field(default_factory=list)  # warnings for files that were not indexed
    seconds: float = 0.0
    up_to_date: bool = False  # build found nothing to do
    validated: bool = False  # a rebuild found nothing changed and checked the live index instead of copying it


class IndexError_(Exception):
    """Base of every index failure the user should see as a clear message (never a traceback)."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    """The index was built with another embedding model, dimension or chunking."""


class IndexCorrupt(IndexError_):
    pass


class IndexBusy(IndexError_):
    """Another process holds the rebuild lock (or serves this embedded store)."""
