"""What the answer pipeline hands to its callers (CLI, web UI, eval). `Answer.to_json()` is a public format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class Passage:
    n: int  # 1-based number shown to the model and the user: the [n] in the answer
    chunk_id: str
    source: str
    title: str
    start: int  # offsets into the document's cleaned text
    end: int
    score: float
    text: str
    page: int | None = None  # PDF: 1-based page where the passage starts; None for other formats
    page_starts: tuple[int, ...] = ()  # PDF: document offsets inside the passage where a new page starts

    def page_at(self, offset: int) -> int | None:
        """The page of a document offset inside this passage (None for a document without pages)."""
        if self.page is None:
            return None
        return self.page + sum(1 for s in self.page_starts if s <= offset)

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "score": round(float(self.score), 6),
            "text": self.text,
            "page": self.page,
        }


@dataclass
class Citation:
    n: int  # the passage it points at
    source: str
    chunk_id: str
    start: int  # offsets of the supporting sentence in the document's cleaned text
    end: int
    quote: str  # that sentence
    page: int | None = None  # PDF: 1-based page where that sentence starts; None for other formats

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    rewritten_question: str | None = None
    timings_ms: dict[str, float] = field(default_factory=lambda: {"retrieve": 0.0, "first_token": 0.0, "total": 0.0})
    abstain_reason: str | None = None  # why code abstained; for eval and logs, not part of the public JSON
    rules: list[dict] = field(default_factory=list)  # the answer rules that fired (qa/checks.py); for qa eval

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "passages": [p.to_json() for p in self.passages],
            "rewritten_question": self.rewritten_question,
            "timings_ms": {k: round(float(v), 1) for k, v in self.timings_ms.items()},
        }


@dataclass
class StreamEvent:
    """One step of a streamed answer: raw model tokens first, then the final, code-checked Answer."""

    kind: Literal["passages", "token", "answer"]
    text: str = ""  # for "token"
    passages: list[Passage] | None = None  # for "passages" (sent before generation starts)
    answer: Answer | None = None  # for "answer" (always last)


class QAError(Exception):
    """A failure the user should see as a clear, friendly message (bad question, no index, no model)."""


class Stopped(QAError):
    """The person stopped the answer (Stop, New chat, a new question) while a model step was running; that step
    ended early."""

    def __init__(self) -> None:
        super().__init__("Stopped.")
