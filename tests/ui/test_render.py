"""The HTML the page shows: hostile text stays inert, markers link to passages, highlights land on the quote."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from qa.types import Answer, Citation, Passage
from tests.ui.fake_service import cite, sample_report, seed_passages
from ui import web_render as render

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "<a href='javascript:alert(1)'>x</a>",
]


class Tags(HTMLParser):
    """Collects the tags and attributes a browser would create from an HTML string."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def assert_inert(html: str) -> None:
    tags = Tags(html).tags
    assert not [t for t, _ in tags if t in {"script", "img", "svg", "iframe"}], html
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")], html
    assert "javascript:" not in " ".join(v or "" for _, attrs in tags for v in attrs.values())


def hostile_passage(payload: str) -> Passage:
    text = f"Intro. {payload} is in this sentence. Outro."
    return Passage(
        n=1, chunk_id="h", source=f"{payload}.html", title=payload, start=100, end=100 + len(text), score=0.5, text=text
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_and_document_text_never_becomes_markup(payload):
    assert_inert(render.question_html(payload))
    assert_inert(render.text_html(payload))
    assert_inert(render.streaming_html(payload))
    assert_inert(render.answer_html(f"{payload} [1]", 0, {1}))
    p = hostile_passage(payload)
    sentence = f"{payload} is in this sentence."
    i = p.text.index(sentence)
    c = Citation(n=1, source=p.source, chunk_id="h", start=p.start + i, end=p.start + i + len(sentence), quote=sentence)
    answer = Answer(question=payload, answer=f"{payload} [1]", abstained=False, citations=[c], passages=[p])
    html = render.sources_html(answer, 3)
    assert_inert(html)
    assert payload in Tags(html).text  # shown literally, not dropped
    assert_inert(render.retrieved_html([p], 3))
    assert_inert(render.status_html({"exists": True, "documents": 1, "chunks": 2, "built_at": payload, "llm": payload}))
    assert_inert(render.notice_html(payload, [payload]))


def test_markers_become_links_to_their_passage_only_when_it_is_shown():
    html = render.answer_html("Dar [1] and Wang Yi [2]; not [9].", 5, {1, 2})
    links = [attrs for tag, attrs in Tags(html).tags if tag == "a"]
    assert [a["href"] for a in links] == ["#qa-src-5-1", "#qa-src-5-2"]
    assert "not [9]." in html
    assert Tags(html).text == "Dar [1] and Wang Yi [2]; not [9]."


def test_supporting_sentence_is_highlighted_inside_its_passage():
    passages = seed_passages()
    sentence = "The message was conveyed in a joint communique"
    c = cite(passages, 2, sentence)
    answer = Answer(
        question="q", answer="Conveyed in a communique [2].", abstained=False, citations=[c], passages=passages
    )
    html = render.sources_html(answer, 1)
    marks = html.split('<mark class="qa-quote">')[1:]
    assert len(marks) == 1 and marks[0].startswith(sentence + "</mark>")
    # The cited passage is shown open with its anchor; the others are folded below it.
    cited_at, folded_at = html.index('id="qa-src-1-2"'), html.index("<details")
    assert cited_at < folded_at
    assert html.index('id="qa-src-1-1"') > folded_at and html.index('id="qa-src-1-3"') > folded_at
    assert "Other retrieved passages (2)" in html
    assert 'href="#qa-src-1-2"' in html  # the source list links to the passage too


def test_highlight_offsets_are_clipped_to_the_passage_and_merged():
    p = Passage(n=1, chunk_id="c", source="d", title="t", start=1000, end=1020, score=1, text="abcdefghijklmnopqrst")
    doc = "x" * 990 + "0123456789" + p.text + "yyyy"
    spans = [(990, 1005), (1003, 1008), (1018, 1024)]
    cites = [Citation(n=1, source="d", chunk_id="c", start=s, end=e, quote=doc[s:e]) for s, e in spans]
    assert render.highlight_spans(p, cites) == [(0, 8), (18, 20)]


def test_highlight_falls_back_to_finding_the_quote_when_offsets_are_stale():
    p = Passage(n=1, chunk_id="c", source="d", title="t", start=0, end=30, score=1, text="One thing. Two things here.")
    stale = Citation(n=1, source="d", chunk_id="c", start=2, end=12, quote="Two things here.")
    assert render.highlight_spans(p, [stale]) == [(11, 27)]
    lost = Citation(n=1, source="d", chunk_id="c", start=2, end=12, quote="Not in the passage.")
    assert render.highlight_spans(p, [lost]) == []
    other = Citation(n=2, source="d", chunk_id="c", start=0, end=5, quote="One t")
    assert render.highlight_spans(p, [other]) == []


def test_abstained_answer_shows_related_passages_without_highlights():
    passages = seed_passages()
    answer = Answer(
        question="Population of Gwadar?", answer="The documents do not say.", abstained=True, passages=passages
    )
    html = render.sources_html(answer, 1)
    assert "Related passages" in html and "<mark" not in html and "<details" not in html
    assert all(f'id="qa-src-1-{p.n}"' in html for p in passages)


def test_status_line_says_what_is_indexed_and_which_model_answers():
    line = render.status_html(
        {"exists": True, "documents": 2, "chunks": 31, "built_at": "2025-01-06T10:30:00", "llm": "Qwen2.5"}
    )
    assert Tags(line).text == "Indexed: 2 documents, 31 passages, built 2025-01-06 10:30. Answering model: Qwen2.5."
    assert "No index yet" in render.status_html({"exists": False, "llm": "Qwen2.5"})
    checked = render.status_html({"exists": False, "llm": "Qwen2.5", "answer_check": "qwen2.5-coder-1.5b <b>"})
    assert Tags(checked).text.endswith(
        "Answering model: Qwen2.5. Uncertain answers checked by: qwen2.5-coder-1.5b <b>."
    )
    assert "checked by" not in render.status_html({"exists": False, "llm": "Qwen2.5", "answer_check": "off"})


def test_rebuild_report_lists_warnings():
    report = sample_report("skipped <b>x</b>.txt: empty", 1.24)
    html = render.report_html(report, ["Added a.txt."])
    assert "Index rebuilt in 1.2 s: 2 documents, 20 passages (6 embedded, 14 reused)." in html
    assert "<li>Added a.txt.</li>" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'data-state="done"' in html


def test_long_question_bubble_is_shortened():
    html = render.question_html("x" * 200_000)
    assert len(html) < 2100 and html.endswith("(200,000 characters)")


def test_the_copy_button_gets_plain_text(tmp_path):
    """The page's script turns a chat message's HTML back into the text shown (run by node on the script itself;
    tests/ui/test_browser.py drives the page in Chromium)."""
    import json
    import re
    import shutil
    import subprocess

    from ui.web import HEAD

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    plain = re.search(r"const plain = (\(html\) => .*?\);)\n", HEAD, re.S).group(1)
    answer = 'Mayor Ann Lee & O\'Brien said "<b>x</b> < y" [1] [7].'
    samples = {
        render.answer_html(answer, 3, {1}): answer,
        render.question_html("<img src=x onerror=alert(1)> & 'q'"): "<img src=x onerror=alert(1)> & 'q'",
        render.streaming_html("Partial &amp; text"): "Partial &amp; text",
        render.text_html("The documents don't say."): "The documents don't say.",
    }
    script = (
        f"const plain = {plain}\nconst cases = {json.dumps(list(samples))};\n"
        "console.log(JSON.stringify(cases.map(plain)));"
    )
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == list(samples.values())


def test_pdf_passages_and_citations_say_their_page_and_other_formats_do_not():
    text = "Override.xml takes precedence over all other files."
    pdf = Passage(
        n=1, chunk_id="p", source="spec.pdf", title="Spec", start=0, end=len(text), score=1, text=text, page=12
    )
    txt = Passage(n=2, chunk_id="t", source="notes.txt", title="Notes", start=0, end=len(text), score=1, text=text)
    cite = Citation(n=1, source="spec.pdf", chunk_id="p", start=0, end=len(text), quote=text, page=12)
    html = render.sources_html(
        Answer(question="q", answer=f"{text} [1]", abstained=False, citations=[cite], passages=[pdf, txt]), 1
    )
    assert "spec.pdf · p. 12 · characters" in html and "Spec, p. 12</a>" in html
    assert "notes.txt · characters" in html and "p. None" not in html


def test_status_line_shows_the_watcher_escaped():
    base = {"exists": True, "documents": 2, "chunks": 9, "built_at": "2026-01-02T03:04:05", "llm": "m"}
    assert "qa-watch" not in render.status_html(base)
    html = render.status_html({**base, "watch": "Rebuilding the index after a change <b>now</b>…"})
    assert '<span class="qa-watch">Rebuilding the index after a change &lt;b&gt;now&lt;/b&gt;…</span>' in html
    assert "Rebuilding" in render.status_html({"exists": False, "watch": "Rebuilding…"})
