"""Property-based tests (hypothesis) over the parts that take arbitrary text: the loader's cleaning, sentence
splitting, chunk splitting and rendering. Any text gives a result (never an exception), offsets always slice
the cleaned text to the piece they describe, and rendered HTML never holds an element that came from the input.

Each property has a fixed example budget and no deadline, so the file finishes in a few seconds in `make test`.
"""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.load import clean_text
from index.split import split_document
from index.types import Document
from qa.text import sentence_spans
from qa.types import Answer, Citation, Passage
from ui import web_render as render

BUDGET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that stresses the code: sentence ends, abbreviations, quotes, brackets, blank lines, controls and escape
# sequences, HTML, non-Latin scripts and characters outside the BMP, mixed with arbitrary Unicode.
PIECES = [
    "Mr. ",
    "No. 5, ",
    "etc. ",
    "e.g. ",
    "U.S. ",
    "2.0 ",
    ". ",
    "...",
    "?! ",
    "!",
    "\n",
    "\n\n",
    "\r\n",
    "\t",
    "  ",
    '"Yes." ',
    "(see [1].) ",
    "COMMENTS (3)\n",
    "\x1b[2J",
    "\x1b]0;t\x07",
    "\x00",
    "\x0c",
    "\u00a0",
    "\ufeff",
    "。",
    "؟ ",
    "۔",
    "😀",
    "<b>",
    "</passages>",
    "word",
    "Islamabad",
    "-",
    "#",
]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=60).map("".join)


def _is_control(ch: str) -> bool:
    return (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F


@BUDGET
@given(texts)
def test_clean_text_gives_clean_text_and_short_titles(raw):
    title, subtitle, text = clean_text(raw)
    assert not any(_is_control(ch) for ch in text + title + subtitle)
    assert "\r" not in text and "\n\n\n" not in text and text == text.strip()
    for heading in (title, subtitle):
        assert len(heading) <= 250 and "\n" not in heading
    assert clean_text(text)[2] == text  # cleaning is idempotent: offsets into cleaned text stay valid


@BUDGET
@given(texts)
def test_sentence_spans_slice_the_text_in_order(text):
    spans = sentence_spans(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        previous_end = end
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())  # nothing is dropped


@BUDGET
@given(texts, st.integers(20, 300), st.data())
def test_chunk_offsets_always_slice_the_cleaned_text_to_the_chunk(raw, size, data):
    _, _, text = clean_text(raw)
    overlap = data.draw(st.integers(0, size - 1))
    doc = Document(source="a.txt", title="t", subtitle="", text=text, sha256="x")
    chunks = split_document(doc, size, overlap)
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        assert text[c.start : c.end] == c.text and 0 < len(c.text) <= size
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


# --- rendering ------------------------------------------------------------------------------------------------
# Tags the renderer writes itself; an input tag is one of these or another name it never writes.
OWN_TAGS = {
    "a",
    "mark",
    "div",
    "span",
    "article",
    "header",
    "p",
    "h3",
    "ul",
    "li",
    "q",
    "details",
    "summary",
    "progress",
    "b",
}
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
    "<a href=javascript:alert(1)>x</a>",
    "<mark>",
    "<div id=qa-src-1-1>",
    '"><b onmouseover=alert(1)>',
    "'><style>*{}</style>",
    "&lt;script&gt;",
    "<!--",
    "-->",
    "<![CDATA[",
    "[1]",
    "[2] ",
    "<x-evil>",
    "</article>",
    "<p class=qa-text>",
]
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=25).map("".join)


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def _assert_only_own_elements(html: str) -> None:
    for tag, attrs in _elements(html):
        assert tag in OWN_TAGS, (tag, html)
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
        if tag == "a":
            assert attrs.get("href", "").startswith("#qa-src-") and attrs.get("class") in ("qa-cite", "qa-source-link")
        if tag in ("div", "article", "p") and "id" in attrs:
            assert attrs["id"].startswith(("qa-src-", "qa-status", "qa-progress")), attrs


@BUDGET
@given(hostile_text, hostile_text, hostile_text, st.booleans())
def test_rendered_html_never_contains_an_element_from_the_input(text, title, quote, abstained):
    passages = [Passage(n, f"c{n}", f"{title}.txt", title, 10 * n, 10 * n + len(text), 1.0, text) for n in (1, 2)]
    citations = [
        Citation(1, passages[0].source, "c1", 10, 10 + len(quote), quote),
        Citation(2, passages[1].source, "c2", 25, 25 + len(quote), quote),
    ]
    answer = Answer(
        question=quote,
        answer=f"{text} [1] {quote} [2] [9]",
        abstained=abstained,
        citations=[] if abstained else citations,
        passages=passages,
    )
    shown = [
        render.text_html(text),
        render.question_html(text),
        render.streaming_html(text),
        render.answer_html(answer.answer, 3, {1, 2}),
        render.sources_html(answer, 3),
        render.retrieved_html(passages, 3),
        render.sources_message(text),
        render.notice_html(text, [title, quote]),
        render.progress_html(text, 1, 2),
        render.status_html(
            {"exists": True, "documents": 1, "chunks": 2, "built_at": text, "llm": title, "llm_note": quote}
        ),
    ]
    for html in shown:
        _assert_only_own_elements(html)
    for passage in passages:  # highlights lie inside the passage, in order, never overlapping
        spans = render.highlight_spans(passage, citations)
        assert all(0 <= s < e <= len(passage.text) for s, e in spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_a_chunk_that_also_occurs_inside_the_previous_one_is_placed_where_it_is():
    """Found by the property above: the second chunk, "000000", also occurs inside the first one; it must point
    at the end of the text, not inside the first chunk (which left the end of the text in no chunk)."""
    text = "Mr. 0000000Mr. 000000"
    chunks = split_document(Document(source="a.txt", title="t", subtitle="", text=text, sha256="x"), 20, 0)
    assert [(c.start, c.end) for c in chunks] == [(0, 14), (15, 21)]
