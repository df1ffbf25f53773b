"""Cut a Document into overlapping, sentence-aware chunks that know their exact place in the document.

Offsets matter more than the cut itself: the UI highlights `doc.text[start:end]`, and citations point there.
"""

from __future__ import annotations

import hashlib
import re

from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.formats import page_at
from index.types import Chunk, Document

# Coarsest first: paragraph breaks, sentence ends, other line breaks, clauses, words, characters.
# A paragraph break is a blank line or a line that ends a sentence; both are one level, so a short headline
# block merges with the paragraph under it instead of standing alone, and hard-wrapped lines (no sentence end)
# are never a place to cut while a sentence end is available.
_SENTENCE_END = r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+"
_PARAGRAPH_END = r"\n[ \t]*\n\s*|(?<=[.!?])\n\s*|(?<=[.!?][\"'\u201d\u2019)\]])\n\s*"
_SEPARATORS = [_PARAGRAPH_END, _SENTENCE_END, r"\n", r";\s", r",\s", r"\s", ""]


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """Same input, same id: lets an unchanged document keep its ids and vectors across builds."""
    return hashlib.sha256(f"{source}\x00{start}\x00{end}\x00{text}".encode("utf-8")).hexdigest()[:32]


def split_document(doc: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of at most chunk_size characters, neighbours sharing up to chunk_overlap characters."""
    if chunk_size <= 0 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"need chunk_size > 0 and 0 <= chunk_overlap < chunk_size (got {chunk_size}, {chunk_overlap})")
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=True,
    )
    chunks: list[Chunk] = []
    cursor = 0
    for piece in splitter.split_text(doc.text):
        start = doc.text.find(piece, cursor)
        if start < 0:  # not expected: pieces are substrings in order; search the whole text to be safe
            start = doc.text.find(piece)
        if start < 0:
            raise ValueError(f"splitter produced text that is not in {doc.source}")
        end = start + len(piece)
        chunks.append(Chunk(chunk_id(doc.source, start, end, piece), doc.source, doc.title, start, end, piece,
                            page_at(doc.pages, start)))
        cursor = start + 1
    return chunks


__all__ = ["chunk_id", "split_document"]
