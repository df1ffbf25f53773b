"""The held-out answer benchmark's corpus cutting and question order (the run itself is `python -m bench heldout`)."""

from __future__ import annotations

from bench.heldout import corpus, pick


def _article():
    para = lambda text, *qs: {"context": text, "qas": [{"question": q, "answer_start": 0, "answer_text": "x"} for q in qs]}
    return {"title": "T", "paragraphs": [para("a" * 40, "What is a?", "Who wrote a?"), para("b" * 40, "Which b?"),
                                         para("c" * 40, "When was c?")]}


def test_corpus_keeps_whole_paragraphs_within_the_limit_and_only_their_questions():
    text, qas = corpus(_article(), max_chars=90)
    assert text == "T\n\n" + "a" * 40 + "\n\n" + "b" * 40 + "\n" and len(text) <= 90
    assert [q["question"] for q in qas] == ["What is a?", "Who wrote a?", "Which b?"]


def test_who_and_which_questions_come_first():
    _, qas = corpus(_article(), max_chars=1000)
    assert [q["question"] for q in pick(qas, 3)] == ["Who wrote a?", "Which b?", "What is a?"]
