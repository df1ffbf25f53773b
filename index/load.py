"""Read the seeds folder into cleaned Documents.

Any file that cannot be read as text (binary, invalid UTF-8, encrypted PDF, empty, unreadable) is skipped with
a warning that names it: one bad file must never stop a build of all the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from html.parser import HTMLParser
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


# Terminal escape sequences (CSI such as a screen clear, OSC such as a title change or a clipboard write, and
# the short ESC forms) and every control character except newline and tab: document text is printed by the
# CLI and must never drive the terminal. Bounded repeats keep this linear on any input.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]{0,64}[ -/]{0,16}[@-~]?"  # CSI (ESC [ or the one-byte C1 form)
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\x9d\n]{0,4096}(?:\x07|\x1b\\|\x9c)"  # OSC, up to BEL or ST
    r"|\x1b[@-Z\\-_]?"  # other ESC sequences (and a lone ESC)
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """The text without terminal escape sequences or control characters (newline and tab stay)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def one_line(text: str, limit: int = 250) -> str:
    """A title or name as one line of at most `limit` characters (whitespace runs become one space)."""
    text = " ".join(_CONTROLS.sub(" ", text[: 4 * limit]).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class _Skip(Exception):
    """A file that cannot be indexed; the message says why."""


def clean_text(raw: str) -> tuple[str, str, str]:
    """Return (title, subtitle, cleaned text).

    The comments footer and runs of blank lines go; the title (first line) and subtitle (second line, when it
    is a short heading) stay in the text so they are searchable, and are returned as metadata too.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = printable(text.replace("\f", "\n").replace("\v", "\n"))
    footer = _FOOTER_START.search(text)
    if footer:
        text = text[: footer.start()]
    text = _FOOTER_LINES.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    lines = text.split("\n")
    title = one_line(lines[0].lstrip("#")) if lines and len(lines[0]) <= _MAX_HEADING_CHARS else ""
    subtitle = ""
    if title and len(lines) > 1 and lines[1].strip() and len(lines[1]) <= _MAX_HEADING_CHARS:
        subtitle = one_line(lines[1].lstrip("#"))
    return title, subtitle, text


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise _Skip("looks like a binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _Skip(f"is not valid UTF-8 text (byte {e.start})") from None


_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg"})


class _VisibleText(HTMLParser):
    """The text nodes of a page outside scripts, styles and the like, and its first <title>, in one streaming
    pass: no tree is built, so deep nesting or a huge page costs linear time (a tree builder did not)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.strings: list[str] = []
        self.title: str | None = None
        self._title: list[str] | None = None
        self._hidden: list[str] = []  # open hidden elements, innermost last

    def handle_starttag(self, tag, attrs):
        if tag == "title" and self.title is None and self._title is None:
            self._title = []
        if tag == "body" and "head" in self._hidden:  # an unclosed <head> ends where the body starts
            del self._hidden[self._hidden.index("head") :]
        if tag in _HIDDEN_TAGS:
            self._hidden.append(tag)

    def handle_startendtag(self, tag, attrs):  # <svg/>, <br/>: nothing opens
        pass

    def handle_endtag(self, tag):
        if tag == "title" and self._title is not None:
            self._end_title()
        if tag in self._hidden:
            del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)
        if not self._hidden:
            self.strings.append(data)

    def unknown_decl(self, data):
        if data.startswith("CDATA[") and not self._hidden:
            self.strings.append(data[6:])

    def _end_title(self):
        self.title = " ".join(s.strip() for s in self._title or [] if s.strip())
        self._title = None


def _html_text(data: bytes) -> tuple[str, str]:
    """Visible text of an HTML page and its <title>: scripts, styles and markup never reach the index."""
    parser = _VisibleText()
    parser.feed(_decode(data))
    parser.close()
    if parser._title is not None:  # an unclosed <title>
        parser._end_title()
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in "\n".join(parser.strings).split("\n"))
    return "\n".join(lines), parser.title or ""


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
    seeds_dir: Path,
    on_file: Callable[[int, int], None] | None = None,
    *,
    max_chars: int = 5_000_000,
    max_seconds: float = 120.0,
    memory_mb: int = 0,
) -> tuple[list[Document], list[str]]:
    """All indexable documents under seeds_dir (recursively, in path order) and one warning per skipped file.

    on_file(done, total) is called after each file, for progress bars. A file with more than max_chars
    characters of text, or a PDF/.docx whose extraction takes longer than max_seconds (in a worker process
    limited to memory_mb MB; 0: no limit), is skipped with a warning naming it.
    """
    with Extractor(max_chars, max_seconds, memory_mb) as extractor:
        return _load(Path(seeds_dir), on_file, max_chars, extractor)


def _load(
    seeds_dir: Path, on_file: Callable[[int, int], None] | None, max_chars: int, extractor: Extractor
) -> tuple[list[Document], list[str]]:
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
                title=one_line(markup_title) or title or one_line(path.stem),
                subtitle=subtitle,
                text=text,
                sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                pages=pages,
            )
        )
    return documents, warnings


__all__ = ["SUPPORTED", "clean_text", "load_documents", "one_line", "printable"]
