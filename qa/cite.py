"""Citations and the support check, decided by code rather than trusted to a small model.

The model writes the answer; here each answer sentence is aligned to the passage sentence that supports it
(embedding similarity plus lexical overlap), the `[n]` markers are set from that alignment (the model's own
markers are discarded), and the answer is checked for key content (numbers, names, quotes) that no passage
contains. An unsupported answer becomes an abstention upstream.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qa.text import STOPWORDS, content_tokens, normalize, sentence_spans, stem, tokens
from qa.types import Citation, Passage

Embed = Callable[[list[str]], list[list[float]]]

# Markers the model may have written: [1], [1, 2], [1][2], 【1】, (Passage 1), [Passage 2], Passage [3].
_MODEL_MARKERS = re.compile(
    r"\s*(?:\[\s*(?:passage\s*)?\d+(?:\s*[,;]\s*\d+)*\s*\]|【\s*\d+\s*】|\(\s*passages?\s*\d+(?:\s*,\s*\d+)*\s*\)"
    r"|\bpassages?\s*\[\s*\d+\s*\])",
    re.IGNORECASE,
)

SUPPORT_THRESHOLD = 0.5  # combined score an answer sentence needs to count as supported (tuned on qa eval)
_COSINE_WEIGHT = 0.5


@dataclass
class PassageSentence:
    n: int
    passage: Passage
    start: int  # absolute offsets into the document's cleaned text
    end: int
    text: str


@dataclass
class AlignedSentence:
    text: str
    support: PassageSentence | None
    score: float


@dataclass
class CitedAnswer:
    text: str  # the answer with code-set [n] markers
    citations: list[Citation] = field(default_factory=list)
    sentences: list[AlignedSentence] = field(default_factory=list)

    @property
    def supported_fraction(self) -> float:
        if not self.sentences:
            return 0.0
        return sum(s.support is not None for s in self.sentences) / len(self.sentences)


def strip_markers(text: str) -> str:
    """The answer without any citation marker the model wrote, whitespace tidied."""
    text = _MODEL_MARKERS.sub("", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def passage_sentences(passages: Sequence[Passage]) -> list[PassageSentence]:
    out = []
    for p in passages:
        for s, e in sentence_spans(p.text):
            out.append(PassageSentence(p.n, p, p.start + s, p.start + e, p.text[s:e]))
    return out


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def _terms(text: str) -> set[str]:
    """The text's content words, stemmed: what lexical overlap compares."""
    return {stem(t) for t in content_tokens(text)}


def _has_term(terms: set[str], term: str) -> bool:
    """`term` is among `terms`; a bare number also matches its ordinal ("75" is in "the 75th anniversary"), and
    a word matches a part of a hyphenated one ("2029" is in "2025-2029", "centred" in "people-centred")."""
    if term in terms or (term.isdigit() and any(term + suffix in terms for suffix in ("st", "nd", "rd", "th"))):
        return True
    return "-" not in term and any(term in map(stem, t.split("-")) for t in terms if "-" in t)


FRAGMENT_WORDS = 4  # an answer "sentence" of at most this many content words is a bare answer ("Monday")


def is_fragment(text: str) -> bool:
    return len(content_tokens(text)) <= FRAGMENT_WORDS


def align(answer: str, passages: Sequence[Passage], embed: Embed, question: str | None = None) -> CitedAnswer:
    """Attach a `[n]` marker to every answer sentence that a shown passage supports.

    Words of the question in the answer are not what it asserts, so lexical overlap counts the other words;
    and a supporting sentence must share a word with the question ("The leader of the Taliban government is
    Ishaq Dar" is not supported by a sentence that names Dar as co-chair of a dialogue).
    A bare answer ("Monday", "Gwadar Port") says too little to be embedded alone: question + answer is
    embedded instead, and only passage sentences that contain every one of its own words can support it.
    """
    clean = strip_markers(answer)
    spans = sentence_spans(clean)
    candidates = passage_sentences(passages)
    if not spans or not candidates:
        return CitedAnswer(clean, [], [AlignedSentence(clean[s:e], None, 0.0) for s, e in spans])
    answer_texts = [clean[s:e] for s, e in spans]
    fragments = [bool(question) and is_fragment(t) for t in answer_texts]
    probes = [f"{question} {t}" if frag else t for t, frag in zip(answer_texts, fragments)]
    vectors = embed(probes + [c.text for c in candidates])
    a_vecs, c_vecs = vectors[: len(spans)], vectors[len(spans):]

    known = frozenset(_terms(question or ""))
    cand_terms = [_terms(c.text) for c in candidates]
    aligned: list[AlignedSentence] = []
    for text, frag, a_vec in zip(answer_texts, fragments, a_vecs):
        asserted = (_terms(text) - known) or _terms(text)
        best, best_score, best_rank = None, 0.0, 0.0
        for cand, terms, c_vec in zip(candidates, cand_terms, c_vecs):
            overlap = sum(_has_term(terms, t) for t in asserted) / len(asserted) if asserted else 0.0
            if frag and overlap < 1.0:
                continue
            if known and not known & terms:  # evidence for this question talks about something it asks
                continue
            score = _COSINE_WEIGHT * _cosine(a_vec, c_vec) + (1 - _COSINE_WEIGHT) * overlap
            # Among sentences that all contain a bare answer ("Dar"), the one that also says what was asked
            # ("co-chaired") is its evidence, not another that merely names it.
            rank = score + (len(known & terms) / len(known) / 2 if frag and known else 0.0)
            if rank > best_rank + 1e-9:  # ties keep the higher-ranked passage (lower n comes first)
                best, best_score, best_rank = cand, score, rank
        aligned.append(AlignedSentence(text, best if best_score >= SUPPORT_THRESHOLD else None, best_score))

    pieces, citations, seen = [], [], set()
    cursor = 0
    for (s, e), al in zip(spans, aligned):
        sentence = clean[s:e]
        pieces.append(clean[cursor:s])
        if al.support is not None:
            sentence = _insert_marker(sentence, al.support.n)
            key = (al.support.n, al.support.start)
            if key not in seen:
                seen.add(key)
                p = al.support.passage
                citations.append(Citation(n=p.n, source=p.source, chunk_id=p.chunk_id, start=al.support.start,
                                          end=al.support.end, quote=al.support.text,
                                          page=p.page_at(al.support.start)))
        pieces.append(sentence)
        cursor = e
    pieces.append(clean[cursor:])
    return CitedAnswer("".join(pieces), citations, aligned)


def _insert_marker(sentence: str, n: int) -> str:
    m = re.search(r"[.!?。！？؟۔]+[\"'”’)]*$", sentence)
    if m:
        return f"{sentence[: m.start()]} [{n}]{sentence[m.start():]}"
    return f"{sentence} [{n}]"


# --- the support check --------------------------------------------------------------------------------------

_NOT_KNOWN = re.compile(
    r"\b(i (?:do not|don't|cannot|can't) (?:know|find|answer|determine)|not (?:explicitly )?(?:mentioned|stated|"
    r"specified|provided|given|available|included|found|disclosed|clear)|(?:does|do|did) not (?:say|mention|specify|"
    r"provide|state|include|contain|give|indicate)|doesn't (?:say|mention|specify|provide|state|contain)|"
    r"no (?:information|mention|details?|data)|cannot be (?:determined|found|answered)|unknown|not enough "
    r"information|insufficient information|no answer)\b",
    re.IGNORECASE,
)
# Ordinals stay whole: "14 days" is not supported by "14th Five-Year Plan".
_NUMBER = re.compile(r"(?:\d[\d,.]*\d|\d)(?:st|nd|rd|th)?(?![A-Za-z])")
# Spelled-out quantities are checked like digits ("one" and "two" are left out: "the two sides", "One-China").
_NUMBER_WORDS = ("three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
                 "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
                 "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand",
                 "million", "billion", "trillion", "percent", "dozen")
_NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,80})[\"“”]")
# "For how much of the year" asks for a share ("year-round"), not a number.
# A cost, value or budget is asked for only right after "what is (the)": "What determines the cost of fixing a
# bug?" asks for a cause.
_QUANTITY_Q = re.compile(r"\b(how (?:many|much(?! of\b)|long|far|old|big|large)|population|percent(?:age)?|number of"
                         r"|what(?:'s|\s+(?:is|was|are|were|will be|would be))?\s+(?:the\s+)?(?:\w+\s+)?(?:amount|cost|"
                         r"value|worth|budget|size|area|rate|salary|price))\b", re.IGNORECASE)
_TIME_Q = re.compile(r"^\s*when\b|\b(?:what|which) (?:\w+ )?(?:year|date|month|day|time)\b", re.IGNORECASE)
# Dates, days, eras ("270,000 BC", "the 1930s", "the first century AD"), and clauses that place a time relative to
# an event ("after the vote", "when the program is run").
_TIME_WORDS = re.compile(r"\b(january|february|march|april|may|june|july|august|september|october|november|"
                         r"december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|year|years|month|"
                         r"week|today|tomorrow|yesterday|\d{4}|\d{1,2}(?:st|nd|rd|th)?|\d{2,4}s|bce?|a\.?d|ce|"
                         r"century|centuries|millennium|millennia|decade|decades|era|after|before|during|until|since|"
                         r"once|when|while)\b", re.IGNORECASE)


def says_not_known(answer: str) -> bool:
    return bool(_NOT_KNOWN.search(answer)) or not answer.strip()


def _numbers(text: str) -> set[str]:
    return {re.sub(r"[,.]", "", m) for m in _NUMBER.findall(text)}


def _names(sentence_text: str) -> list[str]:
    """Capitalised words that are not sentence-initial: the names and places the answer asserts."""
    sentence_text = re.sub(r"['’]s\b", "", sentence_text)  # "Dar's" names Dar
    out = []
    for s, e in sentence_spans(sentence_text):
        words = re.findall(r"[A-Z][\w'’-]+", sentence_text[s:e])
        first = re.match(r"\W*([A-Z][\w'’-]+)", sentence_text[s:e])
        for w in words:
            if first and w == first.group(1) and words and w == words[0]:
                continue
            out.append(w)
    return out


def unsupported_content(answer: str, question: str, passages: Sequence[Passage]) -> list[str]:
    """Key content of the answer (numbers, names, quoted phrases) that neither the passages nor the question
    contain. A non-empty list means the answer asserts something the documents don't say."""
    source = normalize(" ".join(p.text for p in passages))
    source_tokens = {stem(t) for t in tokens(source)}
    question_norm = normalize(question)
    missing = []
    source_numbers = _numbers(source)
    bare = list(content_tokens(answer))  # an answer that is only a number: "75" for "how many years"
    for num in _numbers(answer):
        if num not in source_numbers and not (bare == [num] and _has_term(source_numbers, num)):
            missing.append(num)
    for word in {w.lower() for w in _NUMBER_WORD.findall(answer)}:
        if not re.search(rf"\b{word}\b", source) and word not in question_norm:
            missing.append(word)
    for name in _names(answer):
        n = normalize(name)
        if n not in source and stem(n) not in source_tokens and n not in question_norm:
            missing.append(name)
    for quote in _QUOTED.findall(answer):
        if normalize(quote).strip(" .,;:!?'") not in source:
            missing.append(f'"{quote}"')
    return missing


_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_YEAR = r"(?:1[89]|20)\d\d"
# Numbers that date or name something rather than count it: "January 3", "3 January", years and year ranges.
_NOT_A_COUNT = re.compile(rf"\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}"
                          rf"|\b{_YEAR}(?:\s*[-–]\s*(?:1[89]|20)?\d\d)?\b", re.IGNORECASE)


_DURATION_Q = re.compile(r"\bhow (?:long\b|many (?:days|weeks|months|years)\b)", re.IGNORECASE)
# A date or year, then to/until/-, then another (or a bare day: "January 3 to 5"); covers "2025-2029" too.
_RANGE = re.compile(rf"(?:{_NOT_A_COUNT.pattern})\s*(?:to|until|till|through|[-–])\s*(?:{_NOT_A_COUNT.pattern}|\d{{1,2}}\b)",
                    re.IGNORECASE)


def _counts(answer: str, question: str) -> bool:
    """The answer states a quantity: a number that is not a date or a year, and not one the question already
    gives ("How much is CPEC 2.0 worth?" is not answered by "2.0"). A duration may be given as a range
    ("from January 3 to January 5" answers "How many days did the visit last?")."""
    if _DURATION_Q.search(question) and _RANGE.search(answer):
        return True
    counted = re.search(r"\bhow many (\w+)", question, re.IGNORECASE)
    if counted and re.search(rf"\b(?:one|two|a single)\s+(?:\w+\s+){{0,2}}{re.escape(stem(counted.group(1).lower()))}",
                             answer, re.IGNORECASE):
        return True  # "One senator" for "How many senators", not "the two sides" for "How many agreements"
    rest = _NOT_A_COUNT.sub(" ", answer)
    if _NUMBER_WORD.search(rest):
        return True
    return bool(_numbers(rest) - _numbers(_NOT_A_COUNT.sub(" ", question)))


def answers_question_type(answer: str, question: str) -> bool:
    """A quantity question needs a count or amount in the answer and a when-question a time expression;
    otherwise the model is answering something else (e.g. describing Gwadar Port when asked for its population,
    or giving the dates of a visit when asked how many agreements were signed during it)."""
    if _QUANTITY_Q.search(question) and not _counts(answer, question):
        return False
    if _TIME_Q.search(question) and not _TIME_WORDS.search(answer):
        return False
    return True


# "first" is left out: "from the first day", "at first" rarely name a numbered thing.
_ORDINALS = ("second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth")
_QUALIFIERS = ("deputy", "vice", "former", "acting", "assistant", "junior", "ex", "co", "interim", "late")


def missing_question_terms(question: str, passages: Sequence[Passage]) -> list[str]:
    """Specific things the question names (numbers, ordinals, names) that no passage mentions: asked about
    the eighth round when the documents only have the seventh, the answer cannot be in them."""
    source = normalize(" ".join(p.text for p in passages))
    source_words = set(tokens(source))
    missing = []
    for num in _numbers(question):
        if num not in _numbers(source):
            missing.append(num)
    for w in tokens(question):
        if w in _ORDINALS and w not in source_words:
            missing.append(w)
    for name in _names(question):
        n = normalize(name)
        prefix = n[:4]  # lenient: "Chinese" matches "China", "Pakistani" "Pakistan"
        if len(n) > 2 and n not in source and not any(t.startswith(prefix) for t in source_words):
            missing.append(name)
    return missing


def unqualified_titles(answer: str, passages: Sequence[Passage]) -> list[str]:
    """Titles the answer gives without the qualifier every passage puts before them: "Prime Minister" where
    the documents only ever say "Deputy Prime Minister"."""
    source = normalize(" ".join(p.text for p in passages))
    out = []
    for m in re.finditer(r"(?:[A-Z][a-z]+ ){1,3}[A-Z][a-z]+", answer):
        phrase = normalize(m.group())
        before = normalize(answer[: m.start()]).split()[-1:] if m.start() else []
        hits = [h.start() for h in re.finditer(re.escape(phrase), source)]
        if not hits or (before and before[0].strip("-") in _QUALIFIERS):
            continue
        qualified = [re.search(rf"\b({'|'.join(_QUALIFIERS)})[- ]$", source[max(0, h - 12):h]) for h in hits]
        first_word = phrase.split()[0]
        if all(qualified) and first_word not in _QUALIFIERS:
            out.append(m.group())
    return out


# The qualifier a who-question puts on the person it asks for: "Who was the *Chinese* co-chair?". Only right
# after the wh-word (and a copula or article), so that "Who did the Chinese minister meet?" does not count: there
# "Chinese" describes someone else.
_TARGET_QUALIFIER = re.compile(r"^\W*(?i:who|whom)\b(?:\s+(?i:is|was|are|were|the|an?))*\s+([A-Z][\w-]*[a-z])\b")
_TITLE_RUN = re.compile(r"[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*")


def requalified(answer: str, question: str, evidence: Sequence[str]) -> str | None:
    """The person the evidence names with the question's qualifier, when the answer names only someone else in
    the same sentence; else None.

    Asked for the *Chinese* co-chair of a dialogue "co-chaired by Foreign Minister Ishaq Dar and Chinese Foreign
    Minister Wang Yi", a 0.5B model answers "Ishaq Dar": the right sentence, the wrong one of its two names. In
    the sentence "Chinese" heads the run of capitalised words that ends in "Wang Yi", so that run is the answer.
    Code binds the two only when they are adjacent; it does not guess beyond that.
    """
    m = _TARGET_QUALIFIER.match(question)
    if not m:
        return None
    qualifier = m.group(1)
    asked = {stem(t) for t in tokens(question)}
    named = {w for w in re.findall(r"[A-Z][\w'’-]+", strip_markers(answer)) if stem(normalize(w)) not in asked}
    for sentence in evidence:
        runs = [r.group().split() for r in _TITLE_RUN.finditer(sentence)]
        target = next((r for r in runs if r[0] == qualifier and len(r) > 1), None)
        if target is None:
            continue
        elsewhere = {w for r in runs if r is not target for w in r}
        own = named & set(target) - elsewhere  # "Wang", "Yi": the answer names the qualified person
        other = named & elsewhere - set(target)  # "Ishaq", "Dar": it names someone else in the sentence
        if other and not own:
            return " ".join(target)
    return None


# Questions that ask for one end of a period: "Until which year does it run?", "When does the plan end?".
_END_Q = re.compile(r"\b(?:until|till|through|up to) (?:which|what) year\b|\b(?:end|ends|ending|expire|expires|"
                    r"run until|runs until|last until|lasts until)\b", re.IGNORECASE)
_START_Q = re.compile(r"\b(?:since|from) (?:which|what) year\b|\b(?:start|starts|begin|begins|began|started)\b",
                      re.IGNORECASE)
_YEAR_RANGE = re.compile(rf"\b({_YEAR})\s*(?:[-–]|to|until|through)\s*({_YEAR})\b")


def other_end(answer: str, question: str, evidence: Sequence[str]) -> str | None:
    """The answer with the right end of a year range, when the question asks for one end and the answer gives
    the other; else None.

    Asked "Until which year does it run?" about a plan "(2025-2029)", a 0.5B model answers "Until 2025": a year
    its evidence has, in the wrong place. The range in the evidence says which year ends it.
    """
    want_end, want_start = bool(_END_Q.search(question)), bool(_START_Q.search(question))
    years = set(re.findall(rf"\b{_YEAR}\b", strip_markers(answer)))
    if want_end == want_start or len(years) != 1:  # neither or both asked; no year, or the whole range given
        return None
    year = years.pop()
    for sentence in evidence:
        for m in _YEAR_RANGE.finditer(sentence):
            first, last = m.groups()
            if year == (first if want_end else last) and first != last:
                return re.sub(rf"\b{year}\b", last if want_end else first, answer)
    return None


# "Which solution for Palestine ...?", "In which forums ...?": the kind of thing a which-question asks for. One
# word only: "Which Five-Year Plan" would need the phrase matched, not just "Plan".
_WHICH_NP = re.compile(r"^\W*(?:\w+\s+){0,3}?which\s+(?!of\b)([\w-]+?)(?:'s)?"
                       r"(?=\s+(?:was|were|is|are|did|does|do|has|have|had|will|would|should|can|could|must|may|for|"
                       r"of|in|on|to|from|with|about|at|by)\b|\s*\?|\s*$)", re.IGNORECASE)
_NOT_A_MODIFIER = STOPWORDS | {"other", "such", "this", "that", "these", "those", "its", "their", "his", "her"}


def named_kind(answer: str, question: str, evidence: Sequence[str]) -> str | None:
    """The phrase in the evidence that names the kind of thing a which-question asks for, when the answer names
    neither that kind nor what qualifies it there; else None.

    Asked "Which solution for Palestine did the two sides support?", a 0.5B model answers with the Gaza
    ceasefire from the sentence that also says "the two-state solution": the right sentence, the wrong part.
    The answer must be a *solution*; the one solution in its evidence is "two-state solution". Only when the
    evidence (the sentences the answer was aligned to) names exactly one such thing, away from what the answer
    says. On held-out SQuAD text, looking in every retrieved sentence instead replaced right answers ("Which
    technique …?": "a double point of view" became "Picasso's technique").
    """
    m = _WHICH_NP.match(question)
    if not m:
        return None
    head = stem(normalize(m.group(1)))
    asked = {stem(t) for t in content_tokens(question)}
    said = {stem(t) for t in content_tokens(strip_markers(answer))}
    if head in _NOT_A_MODIFIER or len(head) < 3 or head in said:
        return None
    said -= asked  # what the answer adds: "the two sides supported" only repeats the question
    found = set()
    for sentence in evidence:
        words = list(re.finditer(r"\w[\w'’-]*", sentence))
        stems = [stem(normalize(w.group())) for w in words]
        if not asked - {head} & set(stems):
            continue  # a sentence about something else that happens to use the word
        for i, w in enumerate(words):
            if stems[i] != head or i == 0:
                continue
            j = i - 1  # the modifier: the word before, or the run of capitalised words before a capitalised head
            while j > 0 and w.group()[0].isupper() and words[j - 1].group()[0].isupper() and i - j < 4:
                j -= 1
            modifier = stems[j:i]
            if (any(t in _NOT_A_MODIFIER or t.endswith("'s") for t in modifier) or set(modifier) <= asked
                    or not re.fullmatch(r"[\s'’]*", sentence[words[i - 1].end():w.start()])):
                continue  # an owner ("Picasso's technique") or a word across punctuation ("France, offshoots")
            near = set(stems[max(0, j - 2):i + 5]) - {head}
            if any(_has_term(near, t) for t in said):
                return None  # the answer names it ("75" for "75th", "two state"), or what stands right by it
            found.add(sentence[words[j].start():w.end()])
    return found.pop() if len(found) == 1 else None


_GENERIC = {"mention", "passage", "document", "accord", "communique", "state", "say", "said", "both", "side",
            "sides", "two"}


def is_vacuous(answer: str, question: str) -> bool:
    """The answer only restates the question ("The Five-Year Plan was completed" for "Which Five-Year Plan was
    completed?"): it adds no content word of its own."""
    q = {stem(t) for t in content_tokens(question)}
    new = {stem(t) for t in content_tokens(strip_markers(answer))} - q - _GENERIC
    return not new
