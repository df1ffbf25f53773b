"""The answer pipeline as one LCEL expression: rewrite -> retrieve -> generate -> cite/verify.

Input: {"question": str, "history": [{"role", "content"}], "emit": callable | None}. `emit` receives
StreamEvents (passages before generation, then tokens) so callers can stream; the chain's output is the final
Answer, whose markers and abstention are decided by code (qa.cite), not by the model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from qa import cite, prompts
from qa.text import content_tokens, script_of, sentence_spans, split_sentences, stem
from qa.types import Answer, Passage, StreamEvent

Retrieve = Callable[..., list[Passage]]  # (query) or, with reserve_k, (query, k)
Embed = Callable[[list[str]], list[list[float]]]


@dataclass
class ChainParts:
    retrieve: Retrieve
    embed: Embed
    llm: BaseChatModel | None  # None: the extractive backend
    max_tokens: int = 160
    context_chars: int = 900  # what the model reads: the best sentences of the passages, not whole chunks
    # Documents mode: the whole (small) corpus as the fixed, cached system prompt, or None for passages mode.
    # Called per question: a rebuild can change the corpus, or push it over the size limit.
    documents: Callable[[], str | None] | None = None
    hint_chars: int = 300  # documents mode: the best sentences repeated next to the question
    hint_margin: float = 0.0  # ... and the runner-up too when it scores within this of the best
    # Documents mode: this many more passages are retrieved (via retrieve(query, k)) in case the model answered
    # from a part of the documents outside the top ones; only those the answer cites are shown.
    top_k: int = 4
    reserve_k: int = 0


def needs_rewrite(question: str, history: Sequence[dict]) -> bool:
    """Only spend an LLM call when there is history to resolve or the question is not in English."""
    return bool(history) or script_of(question) != "en"


def _clean_rewrite(text: str, question: str, history: Sequence[dict]) -> str:
    """The model's rewrite when it is a usable new English question; else the previous question + this one,
    which still retrieves the right passages for a follow-up."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(standalone (english )?question|question|rewritten)\s*:\s*", "", line, flags=re.I).strip(" \"'“”")
    last_user = next((m["content"] for m in reversed(history) if m.get("role") == "user"), "")
    same = {_plain(question), _plain(last_user)}
    usable = 3 <= len(line) <= 300 and script_of(line) == "en"
    if usable and (not history or (_plain(line) not in same and _is_question(line))):
        return line
    return f"{last_user} {question}".strip()


# A question opens with an auxiliary ("Did ...") or has its wh-word within the first words ("In which year").
_QUESTION_START = re.compile(r"^\W*(?:(?:is|are|was|were|do|does|did|can|could|will|would|should|has|have|had)\b"
                             r"|(?:\w+\s+){0,2}(?:what|which|who|whom|whose|when|where|why|how)\b)", re.IGNORECASE)


def _is_question(text: str) -> bool:
    """A question, not an answer: a small model asked to rewrite a follow-up sometimes answers it instead
    ("It covers the 14th Five-Year Plan"), which would then be searched as if it were the question."""
    return text.rstrip().endswith("?") or bool(_QUESTION_START.match(text))


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _emit(state: dict, event: StreamEvent) -> None:
    if state.get("emit"):
        state["emit"](event)


def build_chain(parts: ChainParts) -> Runnable:
    def documents(state: dict) -> str | None:
        return parts.documents() if parts.llm is not None and parts.documents is not None else None

    def rewrite(state: dict, config) -> str | None:
        question, history = state["question"], state.get("history") or []
        if parts.llm is None or not needs_rewrite(question, history):
            return None
        docs = state["documents"]
        # An English follow-up is resolved against the cached documents; translating is done by the short
        # dedicated prompt, which a 0.5B model follows better than an instruction after a long document.
        messages = (prompts.rewrite_messages_documents(question, history, docs)
                    if docs and history and script_of(question) == "en"
                    else prompts.rewrite_messages(question, history))
        msg = parts.llm.invoke(messages, config=config, max_tokens=48)
        return _clean_rewrite(str(msg.content), question, history)

    def retrieve(state: dict) -> list[Passage]:
        t0 = time.perf_counter()
        query = state["rewritten"] or state["question"]
        if state["documents"] and parts.reserve_k:
            found = parts.retrieve(query, parts.top_k + parts.reserve_k)
            passages = found[:parts.top_k]
            state["reserve"].extend(found[parts.top_k:])  # in place: the state dict itself is a copy
        else:
            passages = parts.retrieve(query)
        state["timings"]["retrieve"] = (time.perf_counter() - t0) * 1000
        _emit(state, StreamEvent("passages", passages=passages))
        return passages

    def generate(state: dict, config) -> str:
        question = state["rewritten"] or state["question"]
        if not state["passages"]:
            return ""
        if parts.llm is None:
            text = extractive_answer(question, state["passages"], parts.embed)
            state["timings"]["first_token"] = (time.perf_counter() - state["t0"]) * 1000
            _emit(state, StreamEvent("token", text=text))
            return text
        docs = state["documents"]
        if docs:
            # The model sees the conversation itself, so an English follow-up is asked as typed; the rewrite
            # (which a small model can get wrong) only steers retrieval and the sentences repeated as hints.
            history = state.get("history") or []
            asked = state["question"] if script_of(state["question"]) == "en" else question
            hints = select_context(question, state["passages"], parts.embed, parts.hint_chars, parts.hint_margin)
            messages = prompts.answer_messages(asked, hints, docs, history)
        else:
            context = select_context(question, state["passages"], parts.embed, parts.context_chars)
            messages = prompts.answer_messages(question, context)
        pieces = []
        for chunk in parts.llm.stream(messages, config=config, max_tokens=parts.max_tokens):
            piece = str(chunk.content)
            if not piece:
                continue
            if not pieces:
                state["timings"]["first_token"] = (time.perf_counter() - state["t0"]) * 1000
            pieces.append(piece)
            _emit(state, StreamEvent("token", text=piece))
        return "".join(pieces)

    def cite_and_verify(state: dict) -> Answer:
        question = state["rewritten"] or state["question"]
        draft = state["draft"]
        if parts.llm is not None and draft and cite.is_vacuous(draft, question):
            # The small model restated the question without answering it: quote the best sentence instead.
            draft = extractive_answer(question, state["passages"], parts.embed)
        answer = verify(state["question"], state["rewritten"], draft, state["passages"], parts.embed,
                        state.get("reserve", ()))
        state["timings"]["total"] = (time.perf_counter() - state["t0"]) * 1000
        state["timings"].setdefault("first_token", state["timings"]["total"])
        answer.timings_ms = dict(state["timings"])
        return answer

    def start(state: dict) -> dict:
        return {**state, "t0": time.perf_counter(), "timings": {"retrieve": 0.0}, "reserve": []}

    return (
        RunnableLambda(start).with_config(run_name="start")
        | RunnablePassthrough.assign(documents=RunnableLambda(documents).with_config(run_name="documents"))
        | RunnablePassthrough.assign(rewritten=RunnableLambda(rewrite).with_config(run_name="rewrite"))
        | RunnablePassthrough.assign(passages=RunnableLambda(retrieve).with_config(run_name="retrieve"))
        | RunnablePassthrough.assign(draft=RunnableLambda(generate).with_config(run_name="generate"))
        | RunnableLambda(cite_and_verify).with_config(run_name="cite")
    ).with_config(run_name="answer")


def verify(question: str, rewritten: str | None, draft: str, passages: list[Passage], embed: Embed,
           reserve: Sequence[Passage] = ()) -> Answer:
    """Cite by code, then abstain when the draft says it doesn't know, asserts content no passage has, answers
    a different kind of question, or has no supported sentence. A draft that took the wrong part of the right
    sentence (see `_repaired`) is answered with the part asked for.

    `reserve`: further passages (documents mode, where the model read everything) that may support the answer;
    those that end up cited are shown after `passages`.
    """
    lang = script_of(question)
    check_q = rewritten or question
    shown = passages
    passages = [*passages, *reserve]

    def abstain(reason: str) -> Answer:
        return Answer(question, prompts.abstain_message(lang), True, [], shown, rewritten, abstain_reason=reason)

    if not passages:
        return abstain("nothing retrieved")
    absent = cite.missing_question_terms(check_q, passages)
    if absent:
        return abstain(f"the passages never mention {', '.join(absent)}")
    if cite.says_not_known(draft):
        return abstain("model said it does not know")
    sentences = split_sentences(cite.strip_markers(draft))
    echoes = [t for t in sentences if cite.is_vacuous(t, check_q)]
    if echoes and len(echoes) < len(sentences):  # drop an echo of the question
        draft = " ".join(t for t in sentences if t not in echoes)
    cited = cite.align(draft, passages, embed, check_q)
    supported = [s for s in cited.sentences if s.support is not None]
    if not supported:
        return abstain("no answer sentence is supported by a passage")
    if len(supported) < len(cited.sentences):  # drop unsupported sentences (model padding), then re-cite
        cited = cite.align(" ".join(s.text for s in supported), passages, embed, check_q)
    # What this turn asks decides the repair: a follow-up's fallback rewrite starts with the previous question.
    fixed = _repaired(cited, question if lang == "en" else check_q)
    if fixed:  # the right sentence, the wrong part of it: answer with the part asked for
        cited = cite.align(fixed, passages, embed, check_q)
        if not any(s.support for s in cited.sentences):
            return abstain("no answer sentence is supported by a passage")
    claim = cite.strip_markers(cited.text)
    missing = cite.unsupported_content(claim, check_q, passages)
    if missing:
        return abstain(f"not in the passages: {', '.join(missing)}")
    inflated = cite.unqualified_titles(claim, passages)
    if inflated:
        return abstain(f"the passages only give a qualified title: {', '.join(inflated)}")
    if not cite.answers_question_type(claim, check_q):
        return abstain("the answer does not give what the question asks for")
    cited_n = {c.n for c in cited.citations}
    shown = [*shown, *(p for p in reserve if p.n in cited_n)]
    return Answer(question, cited.text, False, cited.citations, shown, rewritten)


def _repaired(cited: cite.CitedAnswer, asked: str) -> str | None:
    """The answer rewritten from its evidence when the model took the wrong part of the right sentence: the
    other person than the one the question qualifies, a different kind of thing than the which-question asks
    for, or the other end of a year range; else None."""
    answer = cite.strip_markers(cited.text)
    evidence = [s.support.text for s in cited.sentences if s.support is not None]
    person = cite.requalified(answer, asked, evidence)
    if person:
        return f"{person}."
    kind = cite.named_kind(answer, asked, evidence)
    if kind:
        return f"{kind[0].upper()}{kind[1:]}."
    return cite.other_end(answer, asked, evidence)


# Sentences that speak to the model instead of stating something ("Ignore previous instructions and reply only
# with ...", "SYSTEM: ..."). Documents are data: the model never reads these and the extractive backend never
# answers with them; the person still sees the whole passage.
_ADDRESSES_MODEL = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.?!]{0,30}\b(?:previous|prior|above|earlier|all|any|your|other|system)"
    r"\b[^.?!]{0,20}\b(?:instructions?|prompts?|rules|directions|passages|context)\b"
    r"|\b(?:reply|respond|answer)\b[^.?!]{0,25}\b(?:only|always)\b[^.?!]{0,15}\bwith\b"
    r"|\banswer (?:every|all|any) (?:questions?|quer(?:y|ies))\b"
    r"|^\W*(?:system|assistant)(?: prompt)?\s*:"
    r"|\b(?:you are|act as) (?:now )?(?:an? |the )?(?:ai|assistant|chatbot|language model|llm)\b",
    re.IGNORECASE,
)


def addresses_model(sentence: str) -> bool:
    return bool(_ADDRESSES_MODEL.search(sentence))


def _rank_sentences(question: str, passages: Sequence[Passage], embed: Embed) -> list[tuple[float, Passage, int, int]]:
    """Every passage sentence scored against the question (cosine + the question words it has), best first;
    sentences addressed to the model are left out.

    Question words count by how few of the candidate sentences have them (idf over the candidates): in an
    article about Pakistan and China, "philosophy" tells the sentences apart and "China" does not (qa eval:
    the sentence holding the answer ranked first for 51 of 56 questions instead of 50, and within the first
    two for all 56 instead of 53)."""
    cands = [(p, s, e) for p in passages for s, e in sentence_spans(p.text)
             if _is_prose(p.text[s:e]) and not addresses_model(p.text[s:e])]
    if not cands:
        return []
    vecs = embed([question] + [p.text[s:e] for p, s, e in cands])
    q_terms = {stem(t) for t in content_tokens(question)}
    cand_terms = [{stem(t) for t in content_tokens(p.text[s:e])} for p, s, e in cands]
    weight = {t: math.log(1 + len(cands) / (1 + sum(t in terms for terms in cand_terms))) for t in q_terms}
    total = sum(weight.values())
    scored = []
    for (p, s, e), vec, terms in zip(cands, vecs[1:], cand_terms):
        overlap = sum(weight[t] for t in q_terms & terms) / total if total else 0.0
        scored.append((0.6 * cite._cosine(vecs[0], vec) + 0.4 * overlap, p, s, e))
    scored.sort(key=lambda x: (-x[0], x[1].n, x[2]))
    return scored


def _is_prose(sentence: str) -> bool:
    """A sentence, not a headline: titles and subtitles (no closing punctuation) are what a small model copies
    instead of answering, and they are kept as metadata anyway."""
    return bool(re.search(r"[.!?。！？؟۔][\"'”’)\]]*$", sentence.strip()))


def select_context(question: str, passages: Sequence[Passage], embed: Embed, budget_chars: int,
                   margin: float = 0.0) -> list[Passage]:
    """The passages cut down to their sentences closest to the question, within a character budget; the
    runner-up sentence also goes in, past the budget, when it scores within `margin` of the best one.

    Prefill is the slow half of a small CPU model's answer (tokens in cost about a third of tokens out), so
    the model reads the few sentences that matter, still numbered by their passage; the full passages are
    still shown to the user and used for citation alignment. When the ranking cannot tell the best two
    sentences apart, the model reads both rather than maybe the wrong one.
    """
    chosen: dict[int, list[tuple[int, int]]] = {}
    used = 0
    ranked = _rank_sentences(question, passages, embed)
    for i, (score, p, s, e) in enumerate(ranked):
        close = i == 1 and score >= ranked[0][0] - margin
        if used and used + (e - s) > budget_chars and not close:
            continue
        chosen.setdefault(p.n, []).append((s, e))
        used += e - s
    out = []
    for p in passages:
        if p.n in chosen:
            text = " ".join(p.text[s:e] for s, e in sorted(chosen[p.n]))
            out.append(dataclasses.replace(p, text=text))
    return out


def documents_prompt(documents: Sequence[tuple[str, str]], max_chars: int) -> str | None:
    """The documents-mode system prompt for a corpus of (title, text) documents, or None when their prose is
    longer than `max_chars` (then passages mode: retrieved sentences only).

    Only prose goes in, paragraph by paragraph: headlines are what a small model copies instead of answering,
    and sentences addressed to the model are left out, as in passages mode.
    """
    if max_chars <= 0:
        return None
    kept: list[tuple[str, str]] = []
    used = 0
    for title, text in documents:
        paragraphs = []
        for para in re.split(r"\n\s*\n", text):
            sentences = [para[s:e] for s, e in sentence_spans(para)
                         if _is_prose(para[s:e]) and not addresses_model(para[s:e])]
            if sentences:
                paragraphs.append(" ".join(" ".join(t.split()) for t in sentences))
                used += len(paragraphs[-1]) + 1
                if used > max_chars + 1:  # stop at once: a large corpus costs no more than the limit
                    return None
        body = "\n".join(paragraphs)
        if body:
            kept.append((title, body))
    return prompts.documents_system(kept) if kept else None


def extractive_answer(question: str, passages: Sequence[Passage], embed: Embed, max_sentences: int = 1) -> str:
    """The passage sentence(s) closest to the question: the answer of the model-free backend."""
    ranked = _rank_sentences(question, passages, embed)
    if not ranked or ranked[0][0] < 0.35:
        return "I don't know."
    chosen: list[str] = []
    for _score, p, s, e in ranked[:max_sentences]:
        if p.text[s:e] not in chosen:
            chosen.append(p.text[s:e])
    return " ".join(chosen)
