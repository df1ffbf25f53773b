"""The whole answer pipeline with the real local model on the article: content, citations, abstention, a
follow-up. Assertions are on what a user sees (names, dates, markers pointing at shown passages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.build import build_index
from qa.service import QAService
from tests.qa.llm_testing import packaged_model_path  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory, packaged_model_path):  # noqa: F811
    from tests.conftest import SEED
    from index.settings import Settings

    base = tmp_path_factory.mktemp("answer")
    seeds = base / "seeds"
    seeds.mkdir()
    (seeds / SEED.name).write_bytes(SEED.read_bytes())
    settings = Settings(_env_file=None, seeds_dir=seeds, data_dir=base / "data", llm="local",
                        llm_model_path=packaged_model_path)
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


@pytest.mark.parametrize("question, expected, quote_has", [
    ("Who co-chaired the dialogue?", ("Dar", "Wang Yi"), "co-chaired"),
    # The 0.5B model answers "Ishaq Dar" from the right sentence; code binds "Chinese" to Wang Yi.
    ("Who was the Chinese co-chair of the dialogue?", ("Wang Yi",), "Chinese Foreign Minister Wang Yi"),
    # It answers with the Gaza ceasefire from the right sentence; code finds the one "solution" in it.
    ("Which solution for Palestine did the two sides support?", ("two-state", "Two-state"), "two-state solution"),
    ("On what date was the dialogue held?", ("January 4",), "January 4"),
    ("What did the two sides agree to build under CPEC?", ("2.0",), "upgraded version 2.0"),
    ("Where will the next round of the Strategic Dialogue be held?", ("Islamabad",), "Islamabad"),
])
def test_answerable_questions_are_answered_and_cited(service, question, expected, quote_has):
    answer = service.ask(question)
    assert not answer.abstained, answer.abstain_reason
    assert any(e in answer.answer for e in expected), answer.answer
    _markers_valid(answer)
    assert any(quote_has in c.quote for c in answer.citations)
    text = service.document_text(answer.citations[0].source)
    assert all(text[c.start:c.end] == c.quote for c in answer.citations)


@pytest.mark.parametrize("question", [
    "What is the population of Gwadar?",
    "How much has China invested in CPEC so far?",
    "Who is Pakistan's Prime Minister?",
])
def test_unanswerable_questions_abstain(service, question):
    answer = service.ask(question)
    assert answer.abstained, answer.answer
    assert answer.answer.startswith("The documents don't say") and answer.citations == []
    assert answer.passages  # related reading


def test_follow_up_uses_history(service):
    """The follow-up alone ("And which highway?") names nothing; with the history, retrieval finds the CPEC
    passage that names the highway."""
    first = service.ask("What did the two sides agree about CPEC?")
    history = [{"role": "user", "content": "What did the two sides agree about CPEC?"},
               {"role": "assistant", "content": first.answer}]
    follow = service.ask("And which highway?", history)
    assert follow.rewritten_question and follow.rewritten_question != "And which highway?"
    assert any("Karakoram Highway" in p.text for p in follow.passages[:2])
    if not follow.abstained:
        _markers_valid(follow)


def test_stream_yields_tokens_before_the_checked_answer(service):
    kinds = [e.kind for e in service.stream("Who was the Chinese co-chair of the dialogue?")]
    assert kinds[0] == "passages" and kinds[-1] == "answer" and kinds.count("token") > 3


def test_documents_mode_keeps_the_article_in_the_prompt_cache(service):
    """The article is small, so it is the fixed system prompt: after warm-up a question prefills only its
    own few tokens (the measured TTFT gain of documents mode), the rest is read from llama.cpp's cache."""
    from qa import prompts

    docs = service._documents_prompt()
    assert docs and "Karakoram Highway" in docs and "COMMENTS" not in docs
    reply = service.llm().invoke(prompts.answer_messages("Where will the next round be held?", [], docs),
                                 max_tokens=8)
    usage = reply.usage_metadata
    cached = usage["input_token_details"]["cache_read"]
    assert cached > 1000 and usage["input_tokens"] - cached < 40, usage


def test_two_people_asking_at_once_both_start_from_the_cached_documents(service):
    """Warm-up puts the processed documents in every slot, so a second concurrent first question does not
    process the ~1,100 document tokens again (which took 12 s and slowed the other answer as much)."""
    import threading

    from qa import prompts

    docs = service._documents_prompt()
    usage = {}

    def ask(question: str) -> None:
        reply = service.llm().invoke(prompts.answer_messages(question, [], docs), max_tokens=4)
        usage[question] = reply.usage_metadata

    threads = [threading.Thread(target=ask, args=(q,)) for q in ("Who co-chaired it?", "Where was it held?")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(usage) == 2
    for u in usage.values():
        assert u["input_token_details"]["cache_read"] > 1000, usage


def test_the_processed_documents_are_saved_and_restored_by_the_next_service(service):
    """Warm-up saved the processed article to disk (llama.cpp slot file beside the model); a new service, as
    in a new `qa ask` process, restores it in milliseconds instead of processing ~1,100 tokens again, and a
    prompt that was never saved is not restored (passages mode then)."""
    from qa import prompts

    llm = service.llm()
    [saved] = list(Path(llm.slot_dir).glob("prompt-*.bin"))
    assert saved.stat().st_size > 1_000_000  # ~12 KB per processed token
    cold = QAService(service.settings)
    assert cold._documents_prompt() == service._documents_prompt()  # restored, not re-processed
    key = prompts.answer_messages("", [], service._documents_prompt())[0][1]
    assert saved.name == llm.prompt_file(key) and llm.restore_prompt(key)
    assert not llm.restore_prompt(key + " (changed documents)")
