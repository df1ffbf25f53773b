"""The answer pipeline, readable in one place: a typed generator of StreamEvents.

    question ─ parse ─ rewrite (follow-ups, other languages) ─ retrieve (respell) ─ rank sentences ─ gate ─ read ─ check ─ cite

1. `Question.parse` removes markup and reads the question's language and kind (qa/question.py).
2. A question in another language is translated into English on its own (by the check's model when there is
   one). A follow-up that points back into the conversation is rewritten into a standalone English question by
   the model; a self-contained question is searched as typed.
3. Hybrid retrieval finds the top passages; a question word the index does not know and that one edit turns
   into a word of those passages is read as they spell it, and they are retrieved again (qa/spelling.py). Every
   sentence in them is ranked against the question (qa/read.py).
4. Gates (qa/checks.py) abstain before any model call when the passages cannot hold the answer: nothing found,
   a name or number of the question that no passage has, or no sentence close enough to the question.
   An answer whose best sentence scores under `verify_below` is read by the check's model (qa/verify.py), and
   withdrawn when it says the sentences do not answer.
5. The answer is the best-ranked sentence (QA_ANSWER_WITH=sentence, the default), and the runner-up too when it
   scores within `tie_margin` of the best (the ranking cannot tell them apart, so both are shown, each with its
   citation, rather than a guess between them); or the reader's words
   (QA_ANSWER_WITH=words): the model, under a grammar, names the sentence that answers and copies the words
   that do, and code finds those words in that sentence (the whole sentence when they are not a span of it).
6. The answer is cited to its sentence by code. Every rule that fired is recorded on the Answer (`rules`), so
   `qa eval` reports how often each fires.

Nothing here holds state between questions: `answer()` reads its inputs, yields events, and returns.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from index.settings import Settings

from qa import checks, prompts
from qa.question import Question, is_self_contained
from qa.read import Candidate, locate, parse_reply, rank_sentences, reader_messages, reply_grammar, title_for_prompt
from qa.spelling import respell
from qa.types import Answer, Citation, Passage, Stopped, StreamEvent

Retrieve = Callable[[str, int], list[Passage]]
Embed = Callable[[list[str]], list[list[float]]]


def _default(name: str):
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class Parts:
    """What the pipeline runs on; built from Settings by QAService."""

    retrieve: Retrieve
    embed: Embed
    llm: BaseChatModel | None  # None: the extractive backend (no rewrites; the best sentence is the answer)
    # Defaults are the settings' own (index/settings.py describes each): one default per knob.
    answer_with: str = _default("answer_with")
    top_k: int = _default("top_k")
    read_sentences: int = _default("read_sentences")
    min_relevance: float = _default("min_relevance")
    tie_margin: float = _default("tie_margin")
    reply_tokens: int = 48
    # The question's vector as retrieval computed it (the embedder remembers recent queries), so the ranking does
    # not encode the question again; None: it is embedded with the sentences.
    embed_query: Callable[[str], list[float]] | None = None
    # Does the index know this word (any chunk has it)? A word it does not know may be misspelled (qa/spelling.py).
    known: Callable[[str], bool] | None = None
    grammar: bool = True  # the model takes a llama.cpp grammar (the local backend); else the prompt alone
    # The answer check (qa/verify.py): p(NONE) of (question, answer's sentences); None: answers are not checked.
    verify: Callable[[str, str], float] | None = None
    verify_below: float = _default("verify_below")
    verify_none: float = _default("verify_none")
    # Translation of a question in another language (the check's model): (question, lang, names, stop=) ->
    # English, None if unavailable; the model stops writing once `stop` is set. None: the answering model translates.
    translate: Callable[..., str | None] | None = None


@dataclass
class Turn:
    """The typed state of one question: each step fills its part."""

    question: Question
    history: list[dict]
    started: float = field(default_factory=time.perf_counter)
    rewritten: str | None = None
    standalone: bool = True  # the query is one question (not the previous question + this one, the fallback)
    passages: list[Passage] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: {"retrieve": 0.0})
    rules: list[dict] = field(default_factory=list)
    stop: threading.Event | None = None  # set when the person stops the answer: the next step does not start

    @property
    def query(self) -> str:
        return self.rewritten or self.question.text

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def fired(self, name: str, **detail) -> None:
        self.rules.append({"name": name, **detail})

    def go_on(self) -> None:
        """Raise Stopped once the person has stopped the answer (between steps that take seconds)."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped()


def answer(
    parts: Parts, asked: str, history: Sequence[dict] = (), stop: threading.Event | None = None
) -> Iterator[StreamEvent]:
    """Passages, then the reader's words as they come, then the final Answer (always last). Once `stop` is set,
    the step under way ends early where it can (a translation) and Stopped is raised before the next one."""
    turn = Turn(Question.parse(asked), list(history), stop=stop)
    turn.rewritten = rewrite(parts, turn)
    turn.go_on()
    t0 = time.perf_counter()
    turn.passages = parts.retrieve(turn.query, parts.top_k)
    respelled = respell(turn.query, turn.passages, parts.known)
    if respelled != turn.query:  # a misspelled word, read as the passages spell it, and searched again
        turn.fired("respelled")
        turn.rewritten = respelled
        turn.passages = parts.retrieve(turn.query, parts.top_k)
    turn.timings["retrieve"] = (time.perf_counter() - t0) * 1000
    yield StreamEvent("passages", passages=turn.passages)
    turn.candidates = rank_sentences(
        turn.query,
        turn.passages,
        parts.embed,
        usable=lambda s: not checks.addresses_model(s),
        question_vector=parts.embed_query(turn.query) if parts.embed_query and turn.passages else None,
    )
    refusal = checks.gate(turn.query, turn.passages, turn.candidates, parts.min_relevance)
    if refusal:  # what would have been answered is kept, so `qa eval` can tell whether the refusal was right
        turn.fired(refusal.rule, would_answer=turn.candidates[0].text if turn.candidates else "")
        yield StreamEvent("answer", answer=_abstain(turn, refusal.reason))
        return
    if parts.llm is None or parts.answer_with == "sentence":
        yield from _sentences(parts, turn)
        return
    words = yield from read(parts, turn)
    yield StreamEvent("answer", answer=_finish(turn, *words))


def rewrite(parts: Parts, turn: Turn) -> str | None:
    """A standalone English question for a follow-up that points back, or for another language; else None.
    A question in another language is translated on its own first; the conversation is read only when the
    English still points back."""
    q, history = turn.question, turn.history
    if parts.llm is None:
        return None
    text = q.text
    if q.lang != "en":
        text = translate(parts, turn)
        if text is None:  # no usable English: the answering model reads the question with the conversation
            text = q.text
        elif not history or is_self_contained(text):
            return text
    elif not history or is_self_contained(text):
        return None
    rewritten = clean_rewrite(written(parts, turn, prompts.rewrite_messages(text, history)), text, history)
    turn.standalone = rewritten != _fallback(text, history)
    return rewritten


def translate(parts: Parts, turn: Turn) -> str | None:
    """The question in English, or None when no reply is an English line. By the check's model, translated twice:
    the passages the first translation finds name the documents it is about, and the second translation is asked
    to spell names as those titles do. Without it (none, or unavailable) the answering model translates once (the
    0.5B, shown titles, replies with a title instead of a question)."""
    t0 = time.perf_counter()
    q = turn.question
    reply = parts.translate(q.text, q.lang, (), stop=turn.stop) if parts.translate else None
    turn.go_on()
    if reply is None:
        english = _english(written(parts, turn, prompts.translate_messages(q.text, q.lang)), q)
    elif (english := _english(reply, q)) is not None:
        titles = [title_for_prompt(p.title) for p in parts.retrieve(english, TITLES_FROM)]
        names = list(dict.fromkeys(t for t in titles if t))
        english = (
            _english(parts.translate(q.text, q.lang, names, stop=turn.stop) or "", q) if names else None
        ) or english
    turn.timings["translate"] = (time.perf_counter() - t0) * 1000
    return english


TITLES_FROM = 8  # passages whose document titles the second translation sees


def written(parts: Parts, turn: Turn, messages: list[tuple[str, str]], max_tokens: int = 48) -> str:
    """The answering model's reply. When the answer can be stopped (the page, the API), the reply is streamed, so a
    stop ends the model's writing at its next token (Stopped is raised); otherwise one request."""
    if turn.stop is None:
        return str(parts.llm.invoke(messages, max_tokens=max_tokens).content)
    reply = []
    with closing(parts.llm.stream(messages, max_tokens=max_tokens)) as chunks:  # closing it cancels the request
        for chunk in chunks:
            turn.go_on()
            reply.append(str(chunk.content))
    turn.go_on()
    return "".join(reply)


def _english(reply: str, q: Question) -> str | None:
    """The reply's first line when it is usable English, else None."""
    line = clean_rewrite(reply, q.text, [])
    return line if line != q.text else None


def clean_rewrite(text: str, question: str, history: Sequence[dict]) -> str:
    """The model's rewrite when it is a usable new English question that no longer points back; else the previous
    question + this one, which still retrieves the right passages for a follow-up."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(standalone (english )?question|question|rewritten)\s*:\s*", "", line, flags=re.I).strip(" \"'“”")
    same = {_plain(question), _plain(_last_user(history))}
    usable = 3 <= len(line) <= 300 and checks.script_of(line) == "en"
    if usable and (not history or (_plain(line) not in same and checks.is_question(line) and is_self_contained(line))):
        return line
    return _fallback(question, history)


def _fallback(question: str, history: Sequence[dict]) -> str:
    return f"{_last_user(history)} {question}".strip()


def _last_user(history: Sequence[dict]) -> str:
    return next((m["content"] for m in reversed(history) if m.get("role") == "user"), "")


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def tied(candidates: Sequence[Candidate], margin: float) -> list[Candidate]:
    """The best sentence, and the runner-up when it scores within `margin` of it.

    >>> p = Passage(1, "c", "s", "t", 0, 9, 1.0, "A. B.")
    >>> [c.n for c in tied([Candidate(1, p, 0, 2, 0.70), Candidate(2, p, 3, 5, 0.65)], 0.08)]
    [1, 2]
    """
    return [c for i, c in enumerate(candidates[:2]) if i == 0 or candidates[0].score - c.score < margin]


def _sentences(parts: Parts, turn: Turn) -> Iterator[StreamEvent]:
    """The answer made of ranked sentences: the best, and a near-tied runner-up; none of the kind the question
    rules out ("How many ...?" answered by a sentence without a number)."""
    chosen = tied(turn.candidates, parts.tie_margin)
    if len(chosen) > 1:
        turn.fired("tie")
    fitting = [c for c in chosen if not checks.wrong_kind(c.text, turn.question)]
    if not fitting:
        turn.fired("wrong_kind", would_answer=chosen[0].text)
        yield StreamEvent("answer", answer=_abstain(turn, checks.wrong_kind(chosen[0].text, turn.question)))
        return
    text = " ".join(with_marker(c.text, c.passage.n) for c in fitting)
    withdrawn = verify(parts, turn, fitting)
    if withdrawn:
        turn.fired("unverified", would_answer=text)
        yield StreamEvent("answer", answer=_abstain(turn, withdrawn))
        return
    turn.timings["first_token"] = turn.elapsed_ms()
    yield StreamEvent("token", text=text)
    yield StreamEvent("answer", answer=_answer(turn, text, [_citation(c) for c in fitting]))


def verify(parts: Parts, turn: Turn, chosen: Sequence[Candidate]) -> str | None:
    """Why an uncertain answer is withdrawn, or None: under `verify_below`, the check's model reads the chosen
    sentences and the (standalone) question, and a NONE as likely as `verify_none` withdraws them
    (qa/verify.py)."""
    if parts.verify is None or chosen[0].score >= parts.verify_below or not turn.standalone:
        return None  # two questions run together cannot be checked against: the model reads them as one
    turn.go_on()
    t0 = time.perf_counter()
    p = parts.verify(turn.query, " ".join(c.text for c in chosen))
    turn.timings["verify"] = (time.perf_counter() - t0) * 1000
    if p < parts.verify_none:
        return None
    return f"the checking model read the sentences as not answering the question (p(NONE) {p:.2f})"


def read(parts: Parts, turn: Turn) -> Iterator[StreamEvent]:
    """The reader's choice: yields its words as tokens and returns (candidate or None, words)."""
    shown = turn.candidates[: parts.read_sentences]
    messages = reader_messages(turn.query, shown)
    reply = ""
    streamed = 0
    extra = {"grammar": reply_grammar(len(shown))} if parts.grammar else {}
    for chunk in parts.llm.stream(messages, max_tokens=parts.reply_tokens, **extra):
        reply += str(chunk.content)
        head, sep, words = reply.partition(":")
        if sep and len(words.lstrip()) > streamed:  # the sentence is chosen: pass its words on as they come
            if not streamed:
                turn.timings["first_token"] = turn.elapsed_ms()
            new = words.lstrip()[streamed:]
            streamed += len(new)
            yield StreamEvent("token", text=new)
    n, words = parse_reply(reply)
    chosen = next((c for c in shown if c.n == n), None)
    return chosen, words


def _finish(turn: Turn, chosen: Candidate | None, words: str) -> Answer:
    if chosen is None:
        turn.fired("reader_found_none", would_answer=turn.candidates[0].text)
        return _abstain(turn, "the reader found no sentence that answers")
    span = locate(words, chosen.text) if words != chosen.text else (0, len(chosen.text))
    if span is None:
        turn.fired("words_not_in_sentence")  # the model wrote words of its own: the sentence is the answer
        span = (0, len(chosen.text))
    text = chosen.text[span[0] : span[1]]
    if span != (0, len(chosen.text)) and checks.is_echo(text, turn.query):
        turn.fired("echo_of_question")  # it repeated the question: the sentence says more
        text = chosen.text
    wrong = checks.wrong_kind(text, turn.question)
    if wrong and text != chosen.text and not checks.wrong_kind(chosen.text, turn.question):
        turn.fired("kind_from_sentence")  # "How many ...?" answered without a number: the sentence has it
        text = chosen.text
    elif wrong:
        turn.fired("wrong_kind", would_answer=text)
        return _abstain(turn, wrong)
    return _answer(turn, with_marker(text, chosen.passage.n), [_citation(chosen)])


def _citation(c: Candidate) -> Citation:
    p = c.passage
    return Citation(
        n=p.n,
        source=p.source,
        chunk_id=p.chunk_id,
        start=p.start + c.start,
        end=p.start + c.end,
        quote=c.text,
        page=p.page_at(p.start + c.start),
    )


def with_marker(text: str, n: int) -> str:
    """The answer on one line with its [n] marker, before a closing full stop.

    >>> with_marker("Beijing,", 2), with_marker("It was held in Beijing.", 1)
    ('Beijing [2]', 'It was held in Beijing [1].')
    """
    text = " ".join(text.split()).rstrip(" ,;:")
    m = re.search(r"[.!?。！？؟۔]+[\"'”’)]*$", text)
    return f"{text[: m.start()]} [{n}]{text[m.start() :]}" if m else f"{text} [{n}]"


def _abstain(turn: Turn, reason: str) -> Answer:
    return _answer(turn, prompts.abstain_message(turn.question.lang), [], abstained=True, reason=reason)


def _answer(
    turn: Turn, text: str, citations: list[Citation], abstained: bool = False, reason: str | None = None
) -> Answer:
    turn.timings["total"] = turn.elapsed_ms()
    turn.timings.setdefault("first_token", turn.timings["total"])
    return Answer(
        turn.question.asked,
        text,
        abstained,
        citations,
        turn.passages,
        turn.rewritten,
        timings_ms=dict(turn.timings),
        abstain_reason=reason,
        rules=list(turn.rules),
    )


__all__ = ["Parts", "Turn", "answer", "clean_rewrite", "read", "rewrite", "tied", "translate", "verify"]
