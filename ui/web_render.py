"""HTML for the chat page: answer bubbles with clickable [n] markers, the sources panel, status lines.

Every piece of text from a person or a document goes through html.escape here, and nowhere else builds HTML.
The Chatbot sanitises what it shows but would still render a pasted <img> as an image; gr.HTML does not
sanitise at all. Escaping is what makes hostile text inert and shows it literally.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape

from index.types import BuildReport
from qa.types import Answer, Citation, Passage

MAX_SHOWN_QUESTION = 2000  # a 200,000-character paste is refused by the service; the bubble shows its start
_MARKER = re.compile(r"\[(\d{1,3})\]")


def passage_id(turn: int, n: int) -> str:
    """Element id of passage n of the answer in chat message `turn` (unique across the session's answers)."""
    return f"qa-src-{turn}-{n}"


def text_html(text: str) -> str:
    """Plain text shown literally in a chat bubble."""
    return escape(text)


def question_html(question: str) -> str:
    if len(question) > MAX_SHOWN_QUESTION:
        question = question[:MAX_SHOWN_QUESTION] + f"… ({len(question):,} characters)"
    return escape(question)


def answer_html(text: str, turn: int, numbers: set[int]) -> str:
    """The answer with each [n] that names a shown passage turned into a link to that passage."""

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        if n not in numbers:
            return m.group(0)
        return f'<a class="qa-cite" href="#{passage_id(turn, n)}" title="Show passage {n}">[{n}]</a>'

    return _MARKER.sub(link, escape(text))


_CURSOR = '<span class="qa-cursor">▍</span>'
_STOPPED = '<span class="qa-note">(stopped)</span>'


def streaming_html(text: str) -> str:
    """The model's raw text while it is still writing (markers become links once the answer is checked)."""
    return escape(text) + _CURSOR


def stopped(chat: list | None) -> list:
    """The chat with each answer left unfinished (Stop, or a new question taking over) marked as stopped instead
    of showing the writing cursor for good. A message's content is HTML text, or (as the page sends the chat
    back) a list of text parts.

    >>> stopped([{"role": "assistant", "content": streaming_html("Ishaq")}])[0]["content"]
    'Ishaq<span class="qa-note">(stopped)</span>'
    >>> stopped([{"role": "assistant", "content": [{"text": streaming_html(""), "type": "text"}]}])[0]["content"]
    [{'text': '<span class="qa-note">(stopped)</span>', 'type': 'text'}]
    """
    return [
        {**m, "content": _stopped(m["content"])} if isinstance(m, dict) and "content" in m else m for m in chat or []
    ]


def _stopped(content):
    if isinstance(content, str):
        return content[: -len(_CURSOR)] + _STOPPED if content.endswith(_CURSOR) else content
    if isinstance(content, list) and content and isinstance(content[-1], dict) and "text" in content[-1]:
        return [*content[:-1], {**content[-1], "text": _stopped(content[-1]["text"])}]
    return content


def highlight_spans(passage: Passage, citations: list[Citation]) -> list[tuple[int, int]]:
    """Where each supporting sentence lies inside the passage text, as merged (start, end) offsets.

    Citation offsets index the document; the passage starts at passage.start. A sentence that runs past the
    passage is clipped to it. When the offsets do not land on the quote (a stale index), the quote is looked
    up in the passage instead, so a highlight is never drawn on the wrong words.
    """
    spans = []
    for c in citations:
        if c.n != passage.n:
            continue
        start, end = c.start - passage.start, c.end - passage.start
        s, e = max(0, start), min(len(passage.text), end)
        if s < e and (not c.quote or passage.text[s:e] == c.quote[s - start : e - start]):
            spans.append((s, e))
        elif c.quote and (i := passage.text.find(c.quote.strip())) >= 0:
            spans.append((i, i + len(c.quote.strip())))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _passage_body(passage: Passage, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for s, e in spans:
        out.append(escape(passage.text[pos:s]))
        out.append(f'<mark class="qa-quote">{escape(passage.text[s:e])}</mark>')
        pos = e
    out.append(escape(passage.text[pos:]))
    return "".join(out)


def _passage_html(passage: Passage, turn: int, citations: list[Citation], cited: bool) -> str:
    spans = highlight_spans(passage, citations) if cited else []
    title = escape(passage.title or passage.source)
    page = f" · p. {passage.page}" if passage.page is not None else ""
    where = f"{escape(passage.source)}{page} · characters {passage.start:,}–{passage.end:,}"
    return (
        f'<article class="qa-passage{" qa-cited" if cited else ""}" id="{passage_id(turn, passage.n)}">'
        f'<header><span class="qa-n">[{passage.n}]</span> <span class="qa-title">{title}</span>'
        f'<span class="qa-where">{where}</span></header>'
        f'<p class="qa-text">{_passage_body(passage, spans)}</p></article>'
    )


def sources_placeholder() -> str:
    return '<div class="qa-sources qa-empty">Ask a question: the passages behind the answer appear here.</div>'


def sources_message(message: str) -> str:
    return f'<div class="qa-sources qa-empty">{escape(message)}</div>'


def retrieved_html(passages: list[Passage], turn: int) -> str:
    """While the model writes: the passages it was given, not yet sorted into cited and not cited."""
    body = "".join(_passage_html(p, turn, [], cited=False) for p in passages)
    return f'<div class="qa-sources"><h3>Retrieved passages</h3><p class="qa-note">Writing the answer…</p>{body}</div>'


def sources_html(answer: Answer, turn: int) -> str:
    """The sources panel for one answer: cited passages with the supporting sentence highlighted, the other
    retrieved passages collapsed below; or, for an abstained answer, the related passages."""
    if not answer.passages:
        return sources_message("No passages were found for this question.")
    if answer.abstained:
        body = "".join(_passage_html(p, turn, [], cited=False) for p in answer.passages)
        return (
            '<div class="qa-sources qa-abstained"><h3>Related passages</h3>'
            '<p class="qa-note">The documents do not answer this; these passages came closest.</p>'
            f"{body}</div>"
        )
    cited_ns = {c.n for c in answer.citations} | {int(n) for n in _MARKER.findall(answer.answer)}
    cited = [p for p in answer.passages if p.n in cited_ns]
    others = [p for p in answer.passages if p.n not in cited_ns]
    links = "".join(
        f'<li><a class="qa-source-link" href="#{passage_id(turn, c.n)}">[{c.n}] '
        f"{escape(_title(answer.passages, c))}{f', p. {c.page}' if c.page is not None else ''}</a> "
        f"<q>{escape(_short(c.quote))}</q></li>"
        for c in answer.citations
    )
    parts = ['<div class="qa-sources"><h3>Sources</h3>']
    if links:
        parts.append(f'<ul class="qa-source-list">{links}</ul>')
    parts.extend(_passage_html(p, turn, answer.citations, cited=True) for p in cited)
    if others:
        inner = "".join(_passage_html(p, turn, [], cited=False) for p in others)
        parts.append(
            f'<details class="qa-others"><summary>Other retrieved passages ({len(others)})</summary>{inner}</details>'
        )
    parts.append("</div>")
    return "".join(parts)


def _short(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _title(passages: list[Passage], citation: Citation) -> str:
    for p in passages:
        if p.n == citation.n:
            return p.title or p.source
    return citation.source


def _when(value) -> str:
    """A build time as 'YYYY-MM-DD HH:MM', from an ISO string or epoch seconds."""
    if value in (None, ""):
        return "unknown"
    try:
        moment = (
            datetime.fromtimestamp(float(value))
            if isinstance(value, (int, float))
            else datetime.fromisoformat(str(value))
        )
    except (TypeError, ValueError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M")


def status_html(status: dict) -> str:
    """One line: what is indexed and which model answers (and why not the configured one, when it fell back)."""
    llm = escape(str(status.get("llm") or "unknown model"))
    if status.get("llm_note"):
        llm += f' <span class="qa-note">({escape(str(status["llm_note"]))})</span>'
    if status.get("answer_check") not in (None, "off"):  # the answer check's model (qa/verify.py), or why it is off
        llm += f". Uncertain answers checked by: {escape(str(status['answer_check']))}"
    watch = f' <span class="qa-watch">{escape(str(status["watch"]))}</span>' if status.get("watch") else ""
    if not status.get("exists"):
        return (
            f'<div class="qa-status" id="qa-status">No index yet: add documents or press '
            f"<b>Rebuild index</b>. Answering model: {llm}.{watch}</div>"
        )
    docs, chunks = int(status.get("documents") or 0), int(status.get("chunks") or 0)
    return (
        f'<div class="qa-status" id="qa-status">Indexed: {docs} document{"s" * (docs != 1)}, '
        f"{chunks} passages, built {escape(_when(status.get('built_at')))}. "
        f"Answering model: {llm}.{watch}</div>"
    )


def progress_html(stage: str, done: int, total: int) -> str:
    pct = int(100 * done / total) if total else 0
    count = f" {done}/{total}" if total else ""
    return (
        f'<div class="qa-progress" id="qa-progress" data-state="running">'
        f'<progress max="100" value="{pct}"></progress> {escape(stage)}{count}</div>'
    )


def report_html(report: BuildReport, notes: list[str] | None = None) -> str:
    """The outcome of a rebuild (and of an upload before it), warnings included."""
    size = f"{report.documents} document{'s' * (report.documents != 1)}, {report.chunks} passages"
    if report.up_to_date:
        head = f"Index is up to date: {size}."
    else:
        head = f"Index rebuilt in {report.seconds:.1f} s: {size} ({report.embedded} embedded, {report.reused} reused)."
    items = [*(notes or []), *report.skipped]
    listing = "".join(f"<li>{escape(x)}</li>" for x in items)
    return (
        f'<div class="qa-progress" id="qa-progress" data-state="done">{escape(head)}'
        f"{f'<ul>{listing}</ul>' if listing else ''}</div>"
    )


def notice_html(message: str, notes: list[str] | None = None, state: str = "error") -> str:
    listing = "".join(f"<li>{escape(x)}</li>" for x in notes or [])
    return (
        f'<div class="qa-progress qa-{state}" id="qa-progress" data-state="{state}">{escape(message)}'
        f"{f'<ul>{listing}</ul>' if listing else ''}</div>"
    )
