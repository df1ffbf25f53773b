"""The document formats the index reads, and text extraction from PDF and Word files under a budget.

PDF and .docx files are parsed by other people's code on bytes that may come from anyone (an upload), and a
small file can expand without limit (deflate streams of content operators, a zip of XML). So their text is
extracted in a separate worker process that is killed when it runs over its time budget, and extraction stops
as soon as the text passes a character cap. Over-budget files fail with a message that says which limit they hit.

PDF text is reflowed into paragraphs (index/reflow.py); every character of the result still maps to its page
through `pages`, the offset at which each page's text starts.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from index.reflow import reflow_pages

# One list for everything that accepts documents (the loader, uploads, the watcher, the page's file picker).
SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
EXTRACTED_SUFFIXES = (".pdf", ".docx")  # parsed in the worker process, under the budget


MAX_TITLE_CHARS = 250


def short_title(value: object) -> str:
    """A title as one line of at most MAX_TITLE_CHARS characters (a file's metadata can hold anything)."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1].rstrip() + "…"


class FormatError(Exception):
    """A file whose text cannot be extracted (damaged, encrypted, over budget); the message says why."""


@dataclass(frozen=True)
class Extracted:
    text: str
    pages: tuple[int, ...] = field(default=())  # PDF: offset in `text` where page i+1 starts; () otherwise
    title: str = ""  # the file's own title (PDF document information), one line, at most MAX_TITLE_CHARS


def page_at(pages: tuple[int, ...] | list[int], offset: int) -> int | None:
    """1-based page of a text offset, or None for a document without pages."""
    if not pages:
        return None
    return max(1, bisect_right(pages, offset))


_JUNK_TITLE = re.compile(r"^(untitled|microsoft \w+ - )|\.(docx?|pdf|odt|rtf|tex|dvi)$", re.IGNORECASE)


# --- extraction (runs in the worker process) --------------------------------------------------------------------
def _over(chars: int, max_chars: int) -> FormatError:
    return FormatError(f"has more than {max_chars:,} characters of text (the limit is QA_MAX_DOC_CHARS)")


def _page_text(page) -> str:
    """The page's text, one line per line of print, with a blank line where the gap between two lines is
    clearly wider than the page's usual line spacing (a paragraph break that the plain text does not show)."""
    pieces: list[tuple[str, float]] = []

    def visit(text, cm, tm, _font, _size) -> None:
        if text:
            pieces.append((text, tm[4] * cm[1] + tm[5] * cm[3] + cm[5]))  # the y of the text on the page

    plain = page.extract_text(visitor_text=visit) or ""
    lines: list[tuple[str, float | None]] = []
    current, y_of = "", None
    for text, y in pieces:
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append((current, y_of))
                current, y_of = "", None
            if y_of is None and part.strip():
                y_of = y
            current += part
    lines.append((current, y_of))
    lines = [(t, y) for t, y in lines if t.strip()]
    if "".join("".join(t.split()) for t, _ in lines) != "".join(plain.split()):
        return plain  # the pieces do not add up to the page's text: no gap information
    steps = sorted(a - b for (_, a), (_, b) in zip(lines, lines[1:]) if a is not None and b is not None and a > b)
    if len(steps) < 2:
        return plain
    usual = steps[len(steps) // 2]
    out, prev_y = [], None
    for t, y in lines:
        if prev_y is not None and y is not None and prev_y - y > 1.4 * usual:
            out.append("")
        out.append(t)
        prev_y = y if y is not None else prev_y
    return "\n".join(out)


def pdf_text(path: str | Path, max_chars: int) -> Extracted:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise FormatError("is an encrypted PDF")
        raw, total = [], 0
        for page in reader.pages:
            raw.append(_page_text(page))
            total += len(raw[-1])
            if total > max_chars:
                raise _over(total, max_chars)
        try:
            title = short_title(reader.metadata.title if reader.metadata else "")
            if _JUNK_TITLE.search(title):  # "Microsoft Word - draft3.docx", "untitled": the first line is better
                title = ""
        except Exception:  # damaged document information: the first line serves as title
            title = ""
    except FormatError:
        raise
    except Exception as e:  # pypdf raises many kinds on damaged or encrypted files (e.g. missing crypto deps)
        raise FormatError(f"is not a readable PDF ({type(e).__name__}: {e})") from None
    text, pages = reflow_pages(raw)
    return Extracted(text, pages, title)


def _docx_blocks(document) -> list[str]:
    """Paragraphs and tables in reading order; a heading is a block of its own, a table row a line."""
    from docx.table import Table

    blocks = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):  # a merged cell is listed once per column
                        cells.append(value)
                if cells:
                    rows.append(" | ".join(cells))
            if rows:
                blocks.append("\n".join(rows))
        else:
            value = " ".join(item.text.split())
            if value:
                blocks.append(value)
    return blocks


def docx_text(path: str | Path, max_chars: int) -> Extracted:
    try:
        import docx

        document = docx.Document(str(path))
        blocks, total = [], 0
        for block in _docx_blocks(document):
            blocks.append(block)
            total += len(block) + 2
            if total > max_chars:
                raise _over(total, max_chars)
    except FormatError:
        raise
    except Exception as e:  # not a zip, not a Word document, damaged XML
        raise FormatError(f"is not a readable Word (.docx) file ({type(e).__name__}: {e})") from None
    return Extracted("\n\n".join(blocks))


_EXTRACTORS = {".pdf": pdf_text, ".docx": docx_text}


def extract_here(path: str | Path, max_chars: int, suffix: str | None = None) -> Extracted:
    """Extract in this process, with no time budget (the worker's job). `suffix` names the format when the
    path's own does not (an upload's temporary file)."""
    kind = (suffix or Path(path).suffix).lower()
    if kind not in _EXTRACTORS:
        raise FormatError(f"is not a format with extracted text ({kind or 'no suffix'})")
    return _EXTRACTORS[kind](path, max_chars)


def _worker(conn, memory_mb: int, extract) -> None:
    try:  # background work: questions answered by the parent process come first on a shared CPU
        os.nice(10)
    except OSError:
        pass
    if memory_mb > 0:
        try:
            import resource

            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
    import pypdf  # noqa: F401 - imported before "ready", so the time budget counts extraction only
    import docx  # noqa: F401

    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        path, max_chars, suffix = job
        try:
            conn.send(("ok", extract(path, max_chars, suffix)))
        except FormatError as e:
            conn.send(("error", str(e)))
        except MemoryError:
            conn.send(("error", f"needs more than {memory_mb} MB of memory to read (QA_MAX_EXTRACT_MB)"))
        except Exception as e:  # noqa: BLE001 - any parser failure is this file's problem only
            conn.send(("error", f"cannot be read ({type(e).__name__}: {e})"))


class Extractor:
    """A worker process that extracts one file at a time; killed and replaced when a file runs over time.

    Use as a context manager; the worker starts on the first file and stops on exit.
    """

    def __init__(self, max_chars: int, max_seconds: float, memory_mb: int = 0, extract=extract_here):
        self.extract_fn = (
            extract  # a module-level function (path, max_chars, suffix) -> Extracted; tests pass a slow one
        )
        self.max_chars = max_chars
        self.max_seconds = max_seconds
        self.memory_mb = memory_mb
        self._proc = None
        self._conn = None

    def __enter__(self) -> "Extractor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold threads and locks
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker, args=(child, self.memory_mb, self.extract_fn), name="qa-extract", daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(60) or parent.recv() != "ready":
            self._kill()
            raise FormatError("could not be read: the extraction worker did not start")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(2)
        self._kill()

    def extract(self, path: str | Path, suffix: str | None = None) -> Extracted:
        """The file's text, or FormatError (damaged, encrypted, over the character or time budget). `suffix`
        names the format when the path's own does not."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        try:
            self._conn.send((str(path), self.max_chars, suffix or Path(path).suffix))
            ready = self._conn.poll(self.max_seconds)
            reply = self._conn.recv() if ready else None
        except (EOFError, OSError):
            self._kill()
            raise FormatError("could not be read: the extraction worker stopped (out of memory?)") from None
        if reply is None:
            self._kill()  # the next file gets a fresh worker
            raise FormatError(f"took longer than {self.max_seconds:g} s to read (the limit is QA_MAX_EXTRACT_SECONDS)")
        kind, value = reply
        if kind == "error":
            raise FormatError(value)
        return value


__all__ = [
    "EXTRACTED_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Extracted",
    "Extractor",
    "FormatError",
    "page_at",
    "pdf_text",
    "docx_text",
    "reflow_pages",
]
