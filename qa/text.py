"""Small text utilities shared by citation alignment, the support check and evaluation.

Kept dependency-free (no model) so they are cheap to unit-test and to call on every answer.
"""

from __future__ import annotations

import re
import unicodedata

# A sentence ends at . ! ? (or their CJK/Arabic forms) followed by space/end, unless the dot belongs to a
# known abbreviation or a number like "2.0".
_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "u.s",
    "u.k",
    "no",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "gen",
    "col",
    "lt",
}
# Linear on any input: a match never starts inside a run of end marks, and runs are taken whole (possessive), so
# a 1 MB line of dots or of abbreviations costs one pass, not one pass per mark.
_END = re.compile(r"(?<![.!?。！？؟۔])[.!?。！？؟۔]++[\"'”’)\]]*+(?=\s|$)|\n+")
_WORD_DOT = re.compile(r"([\w.]+)\.$")
_ABBREV_LOOKBACK = 12  # longer than any entry of _ABBREV, so the check before a dot reads a bounded window


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `text`, whitespace-trimmed; offsets index into `text`."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end, at = m.end(), m.start()
        if text[at] == ".":  # the word before the dot, read in a bounded window (no copy of the text)
            word = _WORD_DOT.search(text, max(start, at - _ABBREV_LOOKBACK), at + 1)
            if word and word.group(1).lower() in _ABBREV:
                continue
        _add_span(text, start, end, spans)
        start = end
    _add_span(text, start, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    seg = text[start:end]
    stripped = seg.strip()
    if not stripped:
        return
    lead = len(seg) - len(seg.lstrip())
    spans.append((start + lead, start + lead + len(stripped)))


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


STOPWORDS = frozenset(
    """
a an the and or but if of to in on at by for with from as into onto over under about after before between during
is are was were be been being am do does did done have has had having will would shall should can could may might
must this that these those it its it's they them their there here what which who whom whose when where why how
i me my we our you your he him his she her not no nor so than too very just also any all both each few more most
other some such only own same then once again further up down out off s t don didn doesn isn wasn weren
according article document documents say says said tell told per mention mentioned
""".split()
)

_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_NUMBER_DASH = re.compile(r"(?<=\d)\s*[‐‑‒–—]\s*(?=\d)")


def normalize(text: str) -> str:
    """Lower-case, accents folded, curly quotes straightened: for matching, never for display."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NUMBER_DASH.sub("-", text)  # "500–700" and "500-700" are the same range
    return text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')


def tokens(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def content_tokens(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in STOPWORDS and len(t) > 1]


def stem(word: str) -> str:
    """A crude suffix stripper: enough to match 'agreed'/'agree', 'terrorism'/'terrorist' is not its job."""
    for suffix in ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ied", "es", "ed", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word  # complete/completed alike


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 between two strings (content tokens, stemmed)."""
    p = [stem(t) for t in content_tokens(prediction)]
    g = [stem(t) for t in content_tokens(gold)]
    if not p or not g:
        return float(p == g)
    common = 0
    remaining = list(g)
    for t in p:
        if t in remaining:
            remaining.remove(t)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def script_of(text: str) -> str:
    """The question's script, for answering/abstaining in its language: 'en', 'ur', 'ar', 'zh' or 'other'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    counts = {"latin": 0, "arabic": 0, "cjk": 0, "other": 0}
    urdu_hint = False
    for c in letters:
        o = ord(c)
        if o < 0x250:
            counts["latin"] += 1
        elif 0x600 <= o <= 0x6FF or 0x750 <= o <= 0x77F or 0xFB50 <= o <= 0xFEFF:
            counts["arabic"] += 1
            urdu_hint |= c in "ٹڈڑںےۓہھگکپچژ"
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF:
            counts["cjk"] += 1
        else:
            counts["other"] += 1
    best = max(counts, key=counts.get)
    if best == "latin":
        return "en"
    if best == "arabic":
        return "ur" if urdu_hint else "ar"
    if best == "cjk":
        return "zh"
    return "other"
