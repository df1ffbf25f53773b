"""bench api's judging of answers under load (the run itself needs a server: `python -m bench api`)."""

from __future__ import annotations

from bench.api import classify


def answer(question: str, content: str, passages, error: str | None = None) -> dict:
    return {"question": question, "content": content, "passages": passages, "citations": [], "error": error}


P1, P2 = [("a.txt", 0, 100)], [("a.txt", 100, 200)]
ALONE = {
    "who?": answer("who?", "Ishaq Dar [1].", P1),
    "where?": answer("where?", "Islamabad [1].", P2),
    "who else?": answer("who else?", "Ishaq Dar [1].", P2),
}


def test_its_own_answer_or_a_shared_correct_answer_is_not_mixed():
    results = [answer("who?", "Ishaq Dar [1].", P1), answer("who else?", "Ishaq Dar [1].", P2)]
    assert classify(results, ALONE) == (0, 0, 0, [])


def test_another_questions_passages_or_answer_is_mixed():
    results = [
        answer("who?", "Islamabad [1].", P2),  # the other request's whole answer
        answer("where?", "Ishaq Dar [1].", P2),
    ]  # its own passages, another question's text
    errors, mixed, differs, problems = classify(results, ALONE)
    assert (errors, mixed, differs) == (0, 2, 0)
    assert [p["mixed_with"] for p in problems] == ["where?", "who?"]


def test_errors_and_other_wordings_are_counted_apart():
    results = [answer("who?", "", None, error="HTTP 500"), answer("where?", "In Islamabad [1].", P2)]
    errors, mixed, differs, _ = classify(results, ALONE)
    assert (errors, mixed, differs) == (1, 0, 1)
