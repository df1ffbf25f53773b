"""The answer check with its real model (the packaged 1.5B): it tells a sentence that answers from one about the
same subject that does not, and the pipeline withdraws only what it reads as not answering."""

from __future__ import annotations

import pytest

from index.settings import Settings
from qa.verify import Verifier
from tests.qa.llm_testing import packaged_check_model_path  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow

CO_CHAIRS = (
    "The message was conveyed in a joint communique issued at the conclusion of the Seventh Round of the "
    "China-Pakistan Foreign Ministers' Strategic Dialogue, co-chaired by Deputy Prime Minister and Foreign "
    "Minister Ishaq Dar and Chinese Foreign Minister Wang Yi in Beijing."
)
DATES = (
    "According to the communique, Dar visited China from January 3 to January 5 at the invitation of Wang Yi and "
    "the dialogue was held on January 4."
)


@pytest.fixture(scope="module")
def check(tmp_path_factory, packaged_check_model_path):  # noqa: F811
    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("check"), verify_model_path=packaged_check_model_path
    )
    verifier = Verifier(settings)
    verifier.load()
    assert verifier.note is None, verifier.note
    return verifier


@pytest.mark.parametrize(
    "question, text",
    [
        ("Who co-chaired the dialogue?", CO_CHAIRS),
        ("When was the dialogue held?", DATES),
        ("How long did Dar stay in China?", DATES),
    ],
)
def test_a_sentence_that_answers_passes_the_check(check, question, text):
    assert check(question, text) < check.settings.verify_none


@pytest.mark.parametrize(
    "question, text",
    [("How many people live in Gwadar?", CO_CHAIRS), ("What did the two ministers eat at the banquet?", DATES)],
)
def test_a_sentence_about_the_same_subject_that_does_not_answer_is_caught(check, question, text):
    assert check(question, text) >= check.settings.verify_none


def test_a_missing_model_turns_the_check_off_with_a_reason(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, verify_model_path=tmp_path / "gone.gguf")
    verifier = Verifier(settings)
    assert verifier("Who won?", "Ann won.") == 0.0  # the answer stands: it is not checked
    assert "gone.gguf" in verifier.note and "not checked" in verifier.note


@pytest.mark.parametrize("question, lang", [("中国的首都是哪个城市？", "zh"), ("ما هي عاصمة الصين؟", "ar")])
def test_the_checks_model_translates_a_question_into_english(check, question, lang):
    english = check.translate(question, lang).lower()
    assert "capital" in english and "china" in english


def test_a_translation_given_a_stop_streams_the_same_words_and_ends_at_the_next_token_once_stopped(check):
    import threading

    from qa.types import Stopped

    question = "中国的首都是哪个城市？"
    assert check.translate(question, "zh", (), threading.Event()) == check.translate(question, "zh")

    class StopAfterTwoTokens(threading.Event):  # the person presses Stop while the model is writing
        looks = 0

        def is_set(self) -> bool:
            self.looks += 1
            return self.looks >= 2

    stop = StopAfterTwoTokens()
    with pytest.raises(Stopped):
        check.translate(question, "zh", (), stop)
    assert stop.looks == 3  # one look a token until it was set, then none from llama.cpp: one more, ours, to raise
