"""The rewrite prompts and the abstention messages (the reader's prompt is in qa/read.py, beside its grammar).

A follow-up is rewritten from the last two exchanges only, each shortened: enough to resolve "it" or "there",
cheap to prefill.
"""

from __future__ import annotations

from collections.abc import Sequence

import re

# Markers an answer may hold: [1], [1, 2], [1][2], 【1】, (Passage 1), [Passage 2], Passage [3].
_MARKERS = re.compile(
    r"\s*(?:\[\s*(?:passage\s*)?\d+(?:\s*[,;]\s*\d+)*\s*\]|【\s*\d+\s*】|\(\s*passages?\s*\d+(?:\s*,\s*\d+)*\s*\)"
    r"|\bpassages?\s*\[\s*\d+\s*\])",
    re.IGNORECASE,
)


def strip_markers(text: str) -> str:
    """The text without citation markers, whitespace tidied: an earlier answer as the rewrite reads it.

    >>> strip_markers("Ishaq Dar [1] and Wang Yi [2].")
    'Ishaq Dar and Wang Yi.'
    """
    text = _MARKERS.sub("", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


_REWRITE_RULES = (
    "Use the conversation only to resolve words like he, she, it, they, that, there, and which. Translate to "
    "English if needed. Output only the question, nothing else."
)
REWRITE_SYSTEM = "You turn the user's last message into one standalone English search question. " + _REWRITE_RULES

LANGUAGES = {"zh": "Chinese", "ar": "Arabic", "ur": "Urdu"}


def translate_messages(question: str, lang: str, names: Sequence[str] = ()) -> list[tuple[str, str]]:
    """A question in another language, to be translated on its own (no conversation: that is read afterwards,
    in English, only when the translation still points back). `names`: the titles of the documents a first
    translation found, so that names come out as the documents spell them ("Arsenal", not "Arnold").

    >>> translate_messages("谁主持了对话？", "zh")[0][1]
    "Translate the user's Chinese question into English. Output only the English question."
    >>> translate_messages("谁主持了对话？", "zh", ["Strategic dialogue", "CPEC"])[0][1].split("question. ")[1]
    'The documents it may be about: Strategic dialogue; CPEC. Write names as these documents spell them.'
    """
    name = LANGUAGES.get(lang)
    whose = f"the user's {name} question" if name else "the user's question"
    system = f"Translate {whose} into English. Output only the English question."
    if names:
        system += f" The documents it may be about: {'; '.join(names)}. Write names as these documents spell them."
    return [("system", system), ("human", question)]


ABSTAIN = {
    "en": "The documents don't say. Nothing in the indexed passages answers this; the closest passages are "
    "listed as related reading.",
    "ur": "دستاویزات میں اس کا ذکر نہیں ہے۔ قریب ترین اقتباسات متعلقہ مطالعے کے لیے دیے گئے ہیں۔",
    "ar": "لا تذكر الوثائق ذلك. أقرب المقاطع مدرجة للاطلاع.",
    "zh": "文档中没有提到这一点。最相关的段落列在下方供参考。",
}


def abstain_message(lang: str) -> str:
    return ABSTAIN.get(lang, ABSTAIN["en"])


def _recent(history: Sequence[dict], max_turns: int) -> list[dict]:
    """The user and assistant messages of the last `max_turns` exchanges."""
    return [m for m in history if m.get("role") in ("user", "assistant")][-2 * max_turns :]


def rewrite_messages(
    question: str, history: Sequence[dict], max_turns: int = 2, max_chars: int = 300
) -> list[tuple[str, str]]:
    """The last `max_turns` exchanges, answers shortened: enough to resolve a reference, cheap to prefill."""
    lines = []
    for m in _recent(history, max_turns):
        who = "User" if m["role"] == "user" else "Assistant"
        text = " ".join(str(m.get("content", "")).split())
        lines.append(f"{who}: {(strip_markers(text) if who == 'Assistant' else text)[:max_chars]}")
    convo = "\n".join(lines) if lines else "(none)"
    return [
        ("system", REWRITE_SYSTEM),
        ("human", f"Conversation:\n{convo}\n\nLast message: {question}\n\nStandalone English question:"),
    ]
