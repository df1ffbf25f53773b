"""Read the seeds folder into cleaned Documents.

Any file that cannot be read as text (binary, invalid UTF-8, encrypted PDF, empty, unreadable) is skipped with
a warning that names it: one bad file must never stop a build of all the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from index.formats import EXTRACTED_SUFFIXES, SUPPORTED_SUFFIXES, Extractor, FormatError
from index.types import Document

SUPPORTED = frozenset(SUPPORTED_SUFFIXES)
_SUPPORTED_NAMES = ", ".join(SUPPORTED_SUFFIXES)

# A title or subtitle is a short line; a long first line is a paragraph, not a heading.
_MAX_HEADING_CHARS = 250

# The news site's comments footer: from the "COMMENTS (n)" heading to the end is page furniture, not article.
_FOOTER_START = re.compile(r"^[ \t]*comments[ \t]*\(\d+\)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_FOOTER_LINES = re.compile(
    r"^[ \t]*(comments are moderated\b.*|for more information,? please see our comments faq\.?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


class _Skip(Exception):
    """A file that cannot be indexed; the message says why."""


def clean_text(raw: str) -> tuple[str, str, str]:
    """Return (title, subtitle, cleaned text).

    The comments footer and runs of blank lines go; the title (first line) and subtitle (second line, when it
    is a short heading) stay in the text so they are searchable, and are returned as metadata too.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    footer = _FOOTER_START.search(text)
    if footer:
        text = text[: footer.start()]
    text = _FOOTER_LINES.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    lines = text.split("\n")
    title = lines[0].lstrip("#").strip() if lines and len(lines[0]) <= _MAX_HEADING_CHARS else ""
    subtitle = ""
    if title and len(lines) > 1 and lines[1].strip() and len(lines[1]) <= _MAX_HEADING_CHARS:
        subtitle = lines[1].lstrip("#").strip()
    return title, subtitle, text


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise _Skip("looks like a binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _Skip(f"is not valid UTF-8 text (byte {e.start})") from None


def _html_text(data: bytes) -> tuple[str, str]:
    """Visible text of an HTML page and its <title>: scripts, styles and markup never reach the index."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head", "svg"]):
        tag.decompose()
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in soup.get_text("\n").split("\n"))
    return "\n".join(lines), page_title


def _read(path: Path, extractor: Extractor) -> tuple[str, str, tuple[int, ...]]:
    """Raw text of one file, a title found in its markup (HTML; PDF metadata) and its page starts (PDF only)."""
    suffix = path.suffix.lower()
    if suffix in EXTRACTED_SUFFIXES:
        try:
            extracted = extractor.extract(path)
        except FormatError as e:
            raise _Skip(str(e)) from None
        return extracted.text, extracted.title, extracted.pages
    data = path.read_bytes()
    if suffix in {".html", ".htm"}:
        return (*_html_text(data), ())
    return _decode(data), "", ()


def _hidden(path: Path, root: Path) -> bool:
    """Dot-files and dot-folders (.git, .DS_Store, editor swap files) are not the user's documents."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_documents(
    seeds_dir: Path, on_file: Callable[[int, int], None] | None = None, *,
    max_chars: int = 5_000_000, max_seconds: float = 120.0, memory_mb: int = 0,
) -> tuple[list[Document], list[str]]:
    """All indexable documents under seeds_dir (recursively, in path order) and one warning per skipped file.

    on_file(done, total) is called after each file, for progress bars. A file with more than max_chars
    characters of text, or a PDF/.docx whose extraction takes longer than max_seconds (in a worker process
    limited to memory_mb MB; 0: no limit), is skipped with a warning naming it.
    """
    with Extractor(max_chars, max_seconds, memory_mb) as extractor:
        return _load(Path(seeds_dir), on_file, max_chars, extractor)


def _load(seeds_dir: Path, on_file: Callable[[int, int], None] | None, max_chars: int,
          extractor: Extractor) -> tuple[list[Document], list[str]]:
    if not seeds_dir.is_dir():
        return [], [f"seeds folder {seeds_dir} does not exist or is not a folder"]
    documents: list[Document] = []
    warnings: list[str] = []
    paths = sorted(p for p in seeds_dir.rglob("*") if not _hidden(p, seeds_dir) and not p.is_dir())
    for done, path in enumerate(paths, 1):
        if on_file is not None:
            on_file(done, len(paths))
        source = path.relative_to(seeds_dir).as_posix()
        if not path.is_file():
            warnings.append(f"skipped {source}: cannot be read (broken link or not a regular file)")
            continue
        if path.suffix.lower() not in SUPPORTED:
            warnings.append(f"skipped {source}: unsupported file type (use {_SUPPORTED_NAMES})")
            continue
        try:
            raw, markup_title, pages = _read(path, extractor)
            title, subtitle, text = clean_text(raw)
            if pages:  # reflowed PDF text is already clean, and its page offsets point into it as it is
                text = raw
            if not text:
                raise _Skip("is empty (no text after cleaning)")
            if len(text) > max_chars:
                raise _Skip(f"has more than {max_chars:,} characters of text (the limit is QA_MAX_DOC_CHARS)")
        except _Skip as e:
            warnings.append(f"skipped {source}: {e}")
            continue
        except OSError as e:
            warnings.append(f"skipped {source}: cannot be read ({e.strerror or e})")
            continue
        documents.append(
            Document(
                source=source,
                title=markup_title or title or path.stem,
                subtitle=subtitle,
                text=text,
                sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                pages=pages,
            )
        )
    return documents, warnings


__all__ = ["SUPPORTED", "clean_text", "load_documents"]
