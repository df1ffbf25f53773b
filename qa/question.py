"""A question, parsed once: the text to search and read with, its language, and its shape.

Every step that needs to know what was asked (retrieval, the reader, the checks) reads it from `Question`, so
there is one place that decides what a question is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.text import content_tokens, script_of

# Markup a person may paste in front of or around a question: it is not what they ask. Removed for search and
# for the model; the person still sees what they typed.
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]{0,500}>.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,500}>|<!--.*?(?:-->|$)", re.DOTALL)
_URL = re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.\S+", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:[a-z]{2,8}|#\d{1,7}|#x[0-9a-f]{1,6});", re.IGNORECASE)


def strip_markup(text: str) -> str:
    """The question without code fences, HTML tags (and script/style bodies), URLs and entities.

    >>> strip_markup("<img src=x onerror=alert(1)> Which port's development is to be accelerated?")
    "Which port's development is to be accelerated?"
    """
    for pattern in (_CODE_FENCE, _SCRIPT_STYLE, _TAG, _URL, _ENTITY):
        text = pattern.sub(" ", text)
    return " ".join(text.split())


# Words that point back into a conversation: a question holding one needs the earlier turns to be understood.
_REFERRING = frozenset(
    """it its it's itself he him his himself she her hers herself they them their theirs
themselves this that these those there then such former latter same other others another else""".split()
)
_ELLIPTIC = re.compile(
    r"^\W*(?:and|but|also|so|what about|how about|and what|or|then|why not|why)\b|^\W*\w+\W*$", re.IGNORECASE
)


def is_self_contained(text: str) -> bool:
    """A question that needs no earlier turn to be understood: no word pointing back, not an elliptic follow-up.

    >>> is_self_contained("Which file takes precedence over all other files in the packages directory?")
    True
    >>> is_self_contained("When did it end?"), is_self_contained("Where will the next one take place?")
    (False, False)
    """
    words = re.findall(r"[\w'’]+", text.lower())
    if _ELLIPTIC.search(text) or len(content_tokens(text)) < 2:
        return False
    # "all other files" compares within the question; "the other issues" points back. Only "other" right after
    # "all"/"any"/"each" stays inside the question.
    referring = [
        i
        for i, w in enumerate(words)
        if w in _REFERRING and not (w in ("other", "others") and i and words[i - 1] in ("all", "any", "each", "every"))
    ]
    # "the next one", "which ones": a noun left out; "one of the rivers" names it.
    ones = [
        i
        for i, w in enumerate(words)
        if w in ("one", "ones")
        and (i + 1 == len(words) or words[i + 1] != "of")
        and i
        and words[i - 1] in ("the", "which", "that", "this", "next", "last", "other", "first", "same")
    ]
    return not referring and not ones


# The kind of answer a question asks for, from its wh-word. Checked against what the answer gives.
_KINDS = (
    (
        "quantity",
        re.compile(
            r"\bhow (?:many|much(?! of\b)|long|far|old|big|large|tall|high|deep|wide|heavy)\b"
            r"|\b(?:what|which) (?:is |was |are |were )?(?:the )?(?:number|percentage|population"
            r"|amount)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "time",
        re.compile(
            r"^\W*(?:\w+\s+){0,2}?when\b|\b(?:what|which) (?:\w+ )?(?:year|date|month|day|century|decade)"
            r"\b",
            re.IGNORECASE,
        ),
    ),
    ("person", re.compile(r"^\W*(?:\w+\s+){0,2}?(?:who|whom|whose)\b", re.IGNORECASE)),
    ("place", re.compile(r"^\W*(?:\w+\s+){0,2}?where\b", re.IGNORECASE)),
)


@dataclass(frozen=True)
class Question:
    asked: str  # as typed (control characters removed): what the person sees and what the answer quotes
    text: str  # markup removed: what is searched and what the model reads
    lang: str  # 'en', 'ur', 'ar', 'zh' or 'other' (qa.text.script_of)
    kind: str  # 'quantity', 'time', 'person', 'place' or 'other'

    @classmethod
    def parse(cls, asked: str) -> "Question":
        """
        >>> Question.parse("<b>How many</b> rounds were held?").kind
        'quantity'
        """
        text = strip_markup(asked) or asked.strip()
        kind = next((name for name, pattern in _KINDS if pattern.search(text)), "other")
        return cls(asked=asked, text=text, lang=script_of(text), kind=kind)


__all__ = ["Question", "is_self_contained", "strip_markup"]
