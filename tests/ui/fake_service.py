"""A scripted stand-in for QAService, for unit tests of the page logic only (the server tests use the real one).

It answers from the real seed article with real offsets, streams the answer word by word, and records what the
page passed in, so tests can check history handling, escaping and error paths without loading any model.
"""

from __future__ import annotations

from pathlib import Path

from index.types import BuildReport, IndexBusy
from qa.types import Answer, Citation, Passage, QAError, StreamEvent

SEED = Path(__file__).resolve().parents[2] / "seeds" / "pakistan-china-strategic-dialogue.txt"


def seed_passages() -> list[Passage]:
    """Three passages of the article, cut at paragraph ends; the second holds the co-chair sentence."""
    text = SEED.read_text(encoding="utf-8")
    cuts = [
        0,
        text.index("The message was conveyed"),
        text.index("According to the communique"),
        text.index("According to the communique") + 900,
    ]
    return [
        Passage(
            n=i + 1,
            chunk_id=f"c{i}",
            source=SEED.name,
            title="Pakistan, China press Taliban",
            start=a,
            end=b,
            score=1.0 / (i + 1),
            text=text[a:b],
        )
        for i, (a, b) in enumerate(zip(cuts, cuts[1:]))
    ]


def cite(passages: list[Passage], n: int, sentence: str) -> Citation:
    p = next(p for p in passages if p.n == n)
    i = p.text.index(sentence)
    return Citation(
        n=n, source=p.source, chunk_id=p.chunk_id, start=p.start + i, end=p.start + i + len(sentence), quote=sentence
    )


class FakeService:
    def __init__(
        self, settings, *, answer_text: str | None = None, abstain: bool = False, fail: Exception | None = None
    ):
        self.settings = settings
        self.passages = seed_passages()
        sentence = self.passages[1].text.split("\n")[0]
        self.citations = [] if abstain else [cite(self.passages, 2, sentence)]
        self.answer_text = answer_text or (
            "I could not find this in the documents." if abstain else "It was co-chaired by Ishaq Dar and Wang Yi [2]."
        )
        self.abstain = abstain
        self.fail = fail
        self.calls: list[tuple[str, list]] = []
        self.stops: list = []  # the stop event each answer was given
        self.rebuilds = 0

    def stream(self, question, history=None, stop=None):
        self.calls.append((question, list(history or [])))
        self.stops.append(stop)
        if not (question or "").strip():
            raise QAError("Please type a question.")
        if self.fail:
            raise self.fail
        yield StreamEvent("passages", passages=self.passages)
        for word in self.answer_text.split(" "):
            yield StreamEvent("token", text=word + " ")
        yield StreamEvent(
            "answer",
            answer=Answer(
                question=question,
                answer=self.answer_text,
                abstained=self.abstain,
                citations=self.citations,
                passages=self.passages,
            ),
        )

    def ask(self, question, history=None, stop=None):
        return [e for e in self.stream(question, history, stop)][-1].answer

    def status(self):
        return {
            "exists": True,
            "documents": 1,
            "chunks": 14,
            "built_at": "2025-01-06T10:30:00+00:00",
            "embedding_model": "all-MiniLM-L6-v2",
            "llm": "fake <b>model</b>",
        }

    def example_questions(self, n=4):
        return ["Who co-chaired the dialogue?"][:n]

    def rebuild(self, on_progress=None):
        if isinstance(self.fail, IndexBusy):
            raise self.fail
        self.rebuilds += 1
        for i in range(3):
            if on_progress:
                on_progress("embedding", i + 1, 3)
        return sample_report("skipped bad.txt: is empty", 1.25)


def sample_report(skipped: str, seconds: float) -> BuildReport:
    """A rebuild of 2 documents, 20 chunks (6 embedded, 14 reused), with one skipped-file warning."""
    return BuildReport(
        collection="c",
        documents=2,
        chunks=20,
        embedded=6,
        reused=14,
        removed_documents=0,
        skipped=[skipped],
        seconds=seconds,
    )


__all__ = ["FakeService", "cite", "sample_report", "seed_passages"]
