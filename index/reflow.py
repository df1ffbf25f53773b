"""PDF text reflowed into paragraphs: lines of a paragraph are joined, end-of-line hyphenation is undone, and
running headers, footers and bare page numbers are dropped. Every character of the result still maps to its
page through the offset at which each page's text starts (index.formats.page_at)."""

from __future__ import annotations

import re
from collections import Counter

_PAGE_NUMBER = re.compile(
    r"^[\s\-–—]*(?:(?:page|p\.|seite|pág\.?)\s*)?(?:\d{1,5}|[ivxlcdm]{1,8})(?:\s*(?:of|/|de|von)\s*\d{1,5})?[\s\-–—]*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?:;][\"'\u201d\u2019)\]]*$")
_LIST_ITEM = re.compile(r"^(?:[-•▪◦*–]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s)")
_HYPHENATED = re.compile(r"[^\W\d_]-$")
_WORD = re.compile(r"\w+(?:-\w+)*")
_WORD_END = re.compile(r"\w+(?:-\w+)*$")
_FURNITURE_LINES = 2  # how many lines at the top and at the bottom of a page may be a running header/footer


def _furniture_key(line: str) -> str:
    """A header/footer line with its numbers masked: 'Spec v2 — page 3' and '... page 4' are the same line."""
    return re.sub(r"\d+", "#", " ".join(line.split()).lower())


def _trim(lines: list[str], repeated: set[str]) -> list[str]:
    """The page's lines without blank ends, running headers/footers (keys in `repeated`) and page numbers."""

    def furniture(line: str) -> bool:
        return not line or _furniture_key(line) in repeated or bool(_PAGE_NUMBER.match(line))

    top, bottom = 0, len(lines)
    dropped = 0
    while top < bottom and furniture(lines[top]) and dropped <= _FURNITURE_LINES:
        dropped += bool(lines[top])
        top += 1
    dropped = 0
    while bottom > top and furniture(lines[bottom - 1]) and dropped <= _FURNITURE_LINES:
        dropped += bool(lines[bottom - 1])
        bottom -= 1
    while top < bottom and not lines[top]:
        top += 1
    while bottom > top and not lines[bottom - 1]:
        bottom -= 1
    return lines[top:bottom]


def _page_lines(raw_pages: list[str]) -> list[list[str]]:
    """Each page's lines without running headers, footers and bare page numbers; "" marks a paragraph gap."""
    pages = []
    for raw in raw_pages:
        lines: list[str] = []
        for line in (raw or "").splitlines():
            line = " ".join(line.split())
            if line or (lines and lines[-1]):  # runs of blank lines become one gap mark
                lines.append(line)
        pages.append(lines)
    counts: Counter = Counter()
    for lines in pages:
        text = [line for line in lines if line]
        edge = set(text[:_FURNITURE_LINES]) | set(text[-_FURNITURE_LINES:])
        counts.update({_furniture_key(line) for line in edge})
    threshold = max(2, (len(pages) + 1) // 2)  # on at least half of the pages (and at least two)
    repeated = {key for key, n in counts.items() if n >= threshold}
    return [_trim(lines, repeated) for lines in pages]


def _line_width(lines: list[str]) -> int:
    """The length of a full line on this page: a high percentile, so one overlong line does not set it."""
    lengths = sorted(len(line) for line in lines if line)
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0


def _continues(prev: str, line: str, width: int) -> bool:
    """Does `line` continue the paragraph that `prev` (a line of a page `width` characters wide) is in?"""
    if _LIST_ITEM.match(line) or len(prev) < 0.6 * width:
        return False  # a list item starts; a short line is a heading or the end of a paragraph
    first_word = len(line.split(" ", 1)[0])
    # A sentence that ends well before the margin, although the next word would have fitted, ends a paragraph.
    return not (_SENTENCE_END.search(prev[-20:]) and len(prev) + 1 + first_word < 0.9 * width)


def _keeps_hyphen(prev: str, line: str, vocabulary: set[str]) -> bool:
    head = _WORD_END.search(prev[-101:-1])  # a bounded tail: a search from every position of a long line is quadratic
    tail = _WORD.match(line)
    if not head or not tail:
        return False
    hyphenated = f"{head.group(0)}-{tail.group(0)}".lower()
    return hyphenated in vocabulary and hyphenated.replace("-", "") not in vocabulary


def reflow_pages(raw_pages: list[str]) -> tuple[str, tuple[int, ...]]:
    """Paragraphs of running text from the text of each page, and the offset where each page starts in it.

    A line ends its paragraph when a blank line (a wider gap on the page) follows it, when it is clearly
    shorter than the page's full lines, or ends a sentence before the margin, or the next line starts a list
    item; otherwise the next line continues it (across a page break too). A word hyphenated at a line end is
    joined back ("infor-" + "mation"), unless the document writes it with that hyphen elsewhere
    ("update-mime-" + "database"); a hyphen before a capital or a digit stays ("Franco-" + "German").
    """
    pages = _page_lines(raw_pages)
    # Words written with a hyphen inside a line: "update-mime-" + "database" keeps its hyphen when the document
    # writes "update-mime-database" elsewhere and never "update-mimedatabase".
    vocabulary = {w.lower() for lines in pages for line in lines for w in _WORD.findall(line)}
    text: list[str] = []  # pieces of the result
    size = 0
    starts: list[int] = []
    prev, prev_width = "", 0  # the last line written and the full-line width of its page
    for lines in pages:
        width = _line_width(lines)
        starts.append(-1)
        gap = False
        for line in lines:
            if not line:  # the page shows a paragraph gap here
                gap = True
                continue
            if not text:
                sep = ""
            elif gap:
                sep = "\n\n"
            elif _continues(prev, line, prev_width) and _HYPHENATED.search(prev) and line[:1].islower():
                sep = ""
                if not _keeps_hyphen(prev, line, vocabulary):
                    text[-1] = text[-1][:-1]  # "infor-" + "mation": one word again
                    size -= 1
            elif _continues(prev, line, prev_width):
                sep = " "
            else:
                sep = "\n\n"
            text.append(sep)
            size += len(sep)
            if starts[-1] < 0:
                starts[-1] = size
            text.append(line)
            size += len(line)
            prev, prev_width, gap = line, width, False
    body = "".join(text)
    # A page without text starts where the next page's text does (or at the end).
    fixed: list[int] = []
    for s in reversed(starts):
        fixed.append(s if s >= 0 else (fixed[-1] if fixed else len(body)))
    return body, tuple(reversed(fixed))


__all__ = ["reflow_pages"]
