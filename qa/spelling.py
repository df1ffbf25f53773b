"""Question words that the passages spell one edit differently.

People misspell names and words ("Sailsbury", "momotremes", "assesment"). Such a word matches nothing: the
ranking gives it no weight, and the gate that refuses questions naming something the passages never mention
refuses the question. So a question word the index does not know at all, and that one edit (a letter added,
dropped, changed, or two neighbours swapped) turns into a word of the retrieved passages, is read as the
passages spell it. Only for matching: the person still sees what they typed.

The work is linear in the passages' words: each unknown question word (at most a few) is compared with the
passage words of about its length and its first letter, and the comparison stops at the second edit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from qa.text import STOPWORDS, normalize
from qa.types import Passage

MIN_LETTERS = 5  # shorter words are one edit from too many others ("form" / "from" / "farm")
_WORD = re.compile(r"[^\W\d_]+")  # letters only: "Beyonce's" is "Beyonce" + "'s"


def one_edit(a: str, b: str) -> bool:
    """True when `a` and `b` differ by exactly one insertion, deletion, substitution or swap of neighbours.

    >>> [one_edit("sailsbury", "salisbury"), one_edit("chaminar", "charminar"), one_edit("austria", "australia")]
    [True, True, False]
    """
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]  # neighbours swapped
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1 :] == shorter[i:]


def respell(question: str, passages: Sequence[Passage], known: Callable[[str], bool] | None = None) -> str:
    """The question with each misspelled word replaced by the passages' spelling; unchanged when none is.

    A word is replaced when it has `MIN_LETTERS` letters or more, is not a stopword, no passage has it, `known`
    (the index's vocabulary) does not know it, and one edit makes it a passage word with the same first letter;
    of several such words, the one the passages use most.

    >>> p = Passage(1, "c", "s", "t", 0, 40, 1.0, "Lord Salisbury was Prime Minister until 1902.")
    >>> respell("How long was Lord Sailsbury Prime Minister?", [p])
    'How long was Lord Salisbury Prime Minister?'
    """
    counts = Counter(w for p in passages for w in _WORD.findall(normalize(p.text)))
    by_shape: dict[tuple[str, int], list[str]] = {}
    for word in counts:
        by_shape.setdefault((word[:1], len(word)), []).append(word)

    def fix(match: re.Match) -> str:
        typed = match.group(0)
        word = normalize(typed)
        if len(word) < MIN_LETTERS or word in STOPWORDS or word in counts or (known and known(typed)):
            return typed
        near = [
            w
            for n in (len(word) - 1, len(word), len(word) + 1)
            for w in by_shape.get((word[:1], n), ())
            if one_edit(word, w)
        ]
        if not near:
            return typed
        best = min(near, key=lambda w: (-counts[w], w))
        return best[:1].upper() + best[1:] if typed[:1].isupper() else best

    return _WORD.sub(fix, question)


__all__ = ["MIN_LETTERS", "one_edit", "respell"]
