"""The whole answer pipeline with the real local model on the article: content, citations, abstention, a
follow-up. Assertions are on what a user sees (names, dates, markers pointing at shown passages)."""

from __future__ import annotations

import re

import pytest

from index.build import build_index
from qa.service import QAService
from tests.qa.llm_testing import packaged_check_model_path, packaged_model_path  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory, packaged_model_path, packaged_check_model_path):  # noqa: F811
    from tests.conftest import SEED
    from index.settings import Settings

    base = tmp_path_factory.mktemp("answer")
    seeds = base / "seeds"
    seeds.mkdir()
    (seeds / SEED.name).write_bytes(SEED.read_bytes())
    settings = Settings(  # default settings: the answer check is on
        _env_file=None,
        seeds_dir=seeds,
        data_dir=base / "data",
        llm="local",
        llm_model_path=packaged_model_path,
        verify_model_path=packaged_check_model_path,
    )
    build_index(settings, progress=False)
    svc = QAService(settings)
    svc.warm_up()
    return svc


def _markers_valid(answer) -> None:
    shown = {p.n for p in answer.passages}
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers and markers <= shown
    for c in answer.citations:
        doc = answer.passages[[p.n for p in answer.passages].index(c.n)]
        assert doc.start <= c.start < c.end <= doc.end  # the quoted sentence lies inside its passage


# Known misses (docs/results.md) stay in the suite as strict xfails: they fail the run the day they start passing,
# so the figures and the docs are updated with them.
NEAR_TIE = pytest.mark.xfail(strict=True, reason="near-tie: the sentence about the next round ranks first")
SAME_SUBJECT = pytest.mark.xfail(strict=True, reason="a sentence about the same subject is taken for an answer")


@pytest.mark.parametrize(
    "question, expected, quote_has",
    [
        ("Who co-chaired the dialogue?", ("Dar", "Wang Yi"), "co-chaired"),
        ("Who was the Chinese co-chair of the dialogue?", ("Wang Yi",), "Chinese Foreign Minister Wang Yi"),
        ("Which solution for Palestine did the two sides support?", ("two-state", "Two-state"), "two-state solution"),
        pytest.param("On what date was the dialogue held?", ("January 4",), "January 4", marks=NEAR_TIE),
        ("What did the two sides agree to build under CPEC?", ("2.0",), "upgraded version 2.0"),
        ("Where will the next round of the Strategic Dialogue be held?", ("Islamabad",), "Islamabad"),
    ],
)
def test_answerable_questions_are_answered_and_cited(service, question, expected, quote_has):
    answer = service.ask(question)
    assert not answer.abstained, answer.abstain_reason
    assert any(e in answer.answer for e in expected), answer.answer
    _markers_valid(answer)
    assert any(quote_has in c.quote for c in answer.citations)
    text = service.document_text(answer.citations[0].source)
    assert all(text[c.start : c.end] == c.quote for c in answer.citations)


@pytest.mark.parametrize(
    "question",
    [
        "What is the population of Gwadar?",
        "How much has China invested in CPEC so far?",
        pytest.param("Who is Pakistan's Prime Minister?", marks=SAME_SUBJECT),
    ],
)
def test_unanswerable_questions_abstain(service, question):
    answer = service.ask(question)
    assert answer.abstained, answer.answer
    assert answer.answer.startswith("The documents don't say") and answer.citations == []
    assert answer.passages  # related reading


def test_follow_up_uses_history(service):
    """The follow-up alone ("And which highway?") names nothing; with the history, retrieval finds the CPEC
    passage that names the highway."""
    first = service.ask("What did the two sides agree about CPEC?")
    history = [
        {"role": "user", "content": "What did the two sides agree about CPEC?"},
        {"role": "assistant", "content": first.answer},
    ]
    follow = service.ask("And which highway?", history)
    assert follow.rewritten_question and follow.rewritten_question != "And which highway?"
    assert any("Karakoram Highway" in p.text for p in follow.passages[:2])
    if not follow.abstained:
        _markers_valid(follow)


def test_stream_yields_tokens_before_the_checked_answer(service):
    kinds = [e.kind for e in service.stream("Who was the Chinese co-chair of the dialogue?")]
    assert kinds[0] == "passages" and kinds[-1] == "answer" and kinds.count("token") >= 1


def test_a_misspelled_question_is_answered_as_the_article_spells_it(service):
    """ "dialouge" is in no chunk of the index and one swap from the article's "dialogue": it is searched and
    ranked as "dialogue", and the answer says what was searched."""
    answer = service.ask("Who co-chaired the strategic dialouge?")
    assert answer.rewritten_question == "Who co-chaired the strategic dialogue?"
    assert not answer.abstained and "Wang Yi" in answer.answer, answer.answer
    _markers_valid(answer)


def test_a_question_in_chinese_is_translated_by_the_check_model_and_answered_from_the_english_article(service):
    answer = service.ask("谁共同主持了这次战略对话？")  # "Who co-chaired this strategic dialogue?"
    assert answer.rewritten_question and answer.rewritten_question.isascii(), answer.rewritten_question
    assert "translate" in answer.timings_ms
    assert not answer.abstained and "Wang Yi" in answer.answer, (answer.rewritten_question, answer.answer)
    _markers_valid(answer)
