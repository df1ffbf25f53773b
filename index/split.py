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
_NONSPACE = re.compile(r"\S")
_SEPARATORS = [_PARAGRAPH_END, _SENTENCE_END, r"\n", r";\s", r",\s", r"\s", ""]


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """Same input, same id: lets an unchanged document keep its ids and vectors across builds."""
    return hashlib.sha256(f"{source}\x00{start}\x00{end}\x00{text}".encode("utf-8")).hexdigest()[:32]


class _Splitter(RecursiveCharacterTextSplitter):
    """The recursive splitter, except that text with no separator but single characters left (a long run with
    no space, comma or sentence end) is cut into fixed windows at once. The library would split it into single
    characters and merge them back, dropping merged pieces one list copy at a time: linear in the text, but
    about chunk_size times slower than this."""

    def _split_text(self, text: str, separators: list[str]) -> list[str]:
        if not any(sep and re.search(sep, text) for sep in separators):
            if not text:
                return []
            step = self._chunk_size - self._chunk_overlap
            return [text[i : i + self._chunk_size] for i in range(0, max(len(text) - self._chunk_overlap, 1), step)]
        return super()._split_text(text, separators)


def split_document(doc: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of at most chunk_size characters, neighbours sharing up to chunk_overlap characters."""
    if chunk_size <= 0 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"need chunk_size > 0 and 0 <= chunk_overlap < chunk_size (got {chunk_size}, {chunk_overlap})")
    splitter = _Splitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=True,
    )
    chunks: list[Chunk] = []
    text = doc.text
    prev_start, prev_end = -1, 0
    for piece in splitter.split_text(text):
        start = _place(text, piece, prev_start, prev_end, chunk_overlap)
        if start < 0:
            raise ValueError(f"splitter produced text that is not in {doc.source}")
        end = start + len(piece)
        chunks.append(
            Chunk(
                chunk_id(doc.source, start, end, piece),
                doc.source,
                doc.title,
                start,
                end,
                piece,
                page_at(doc.pages, start),
            )
        )
        prev_start, prev_end = start, end
    return chunks


def _place(text: str, piece: str, prev_start: int, prev_end: int, overlap: int) -> int:
    """Where `piece`, the chunk after the one at [prev_start, prev_end), starts in `text`.

    The splitter drops only whitespace and repeats at most `overlap` characters, so the next chunk starts
    between prev_end - overlap and the first non-space character at or after prev_end. In repetitive text the
    piece can occur earlier too (e.g. inside the previous chunk); the latest occurrence in that window is the
    one that leaves no gap. Searching a window costs about one chunk, so placing all chunks is linear."""
    nonspace = _NONSPACE.search(text, prev_end)
    gap = nonspace.start() if nonspace else len(text)
    low = max(prev_start + 1, prev_end - overlap, 0)
    start = text.rfind(piece, low, gap + len(piece))
    if start < 0:  # not expected; fall back to the next occurrence, then to any
        start = text.find(piece, prev_start + 1)
    if start < 0:
        start = text.find(piece)
    return start


__all__ = ["chunk_id", "split_document"]
