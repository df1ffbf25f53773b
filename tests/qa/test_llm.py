"""The chat-model backends on real parts: the packaged GGUF in-process, and an OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request

import pytest
from langchain_core.messages import AIMessageChunk

from index.settings import Settings
from qa.llm import LLMError, LocalChatModel, get_chat_model, local_server
from qa.types import QAError

from tests.qa.llm_testing import local_chat_model, packaged_model_path  # noqa: F401  (session fixtures)

SHORT = [("system", "You are a terse assistant."), ("human", "Name the three primary colors of light.")]


def _stream_text(model, messages, **kwargs) -> tuple[list[AIMessageChunk], str]:
    chunks = list(model.stream(messages, **kwargs))
    return chunks, "".join(c.content for c in chunks)


# --- choosing a backend (no model needed) --------------------------------------------------------------------


def test_extractive_backend_has_no_chat_model(settings):
    with pytest.raises(LLMError, match="no generative chat model") as info:
        get_chat_model(settings.with_overrides(llm="extractive"))
    assert isinstance(info.value, QAError)


def test_openai_backend_is_configured_from_settings(settings):
    s = settings.with_overrides(
        llm="openai", openai_base_url="http://127.0.0.1:9/v1", openai_model="m-1", temperature=0.0, max_tokens=77
    )
    model = get_chat_model(s, openai_api_key="k")
    assert (model.model_name, model.openai_api_base, model.temperature, model.max_tokens) == (
        "m-1",
        "http://127.0.0.1:9/v1",
        0.0,
        77,
    )


def test_openai_backend_without_any_key_says_what_is_missing(settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        get_chat_model(settings.with_overrides(llm="openai", openai_base_url="http://127.0.0.1:9/v1"))


def test_local_backend_with_a_missing_model_file_fails_clearly(settings, tmp_path):
    with pytest.raises(QAError, match="not a file"):
        get_chat_model(settings.with_overrides(llm_model_path=tmp_path / "nope.gguf"))


# --- the local model --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_local_model_takes_its_parameters_from_settings(local_chat_model, packaged_model_path):
    defaults = Settings(_env_file=None)
    assert isinstance(local_chat_model, LocalChatModel)
    assert local_chat_model.model_path == packaged_model_path
    assert (
        local_chat_model.n_ctx,
        local_chat_model.n_parallel,
        local_chat_model.n_threads,
        local_chat_model.temperature,
        local_chat_model.max_tokens,
    ) == (defaults.llm_ctx, defaults.llm_parallel, defaults.llm_threads, defaults.temperature, defaults.max_tokens)


@pytest.mark.slow
def test_streaming_yields_tokens_that_add_up_to_the_plain_answer(local_chat_model):
    answer = local_chat_model.invoke(SHORT)
    chunks, streamed = _stream_text(local_chat_model, SHORT)
    assert "red" in answer.content.lower() and "blue" in answer.content.lower()
    assert len([c for c in chunks if c.content]) >= 3  # token by token, not one block
    assert streamed == answer.content


@pytest.mark.slow
def test_async_streaming_matches_too(local_chat_model):
    async def collect() -> str:
        return "".join([c.content async for c in local_chat_model.astream(SHORT)])

    assert asyncio.run(collect()) == local_chat_model.invoke(SHORT).content


@pytest.mark.slow
def test_response_metadata_reports_timings_and_prompt_cache_hits(local_chat_model):
    system = ("You answer questions about documents. " * 12).strip()  # a fixed prefix of ~100 tokens
    local_chat_model.invoke([("system", system), ("human", "What is a document?")], max_tokens=8)
    second = local_chat_model.invoke([("system", system), ("human", "Who writes documents?")], max_tokens=8)
    timings = second.response_metadata["timings"]
    assert timings["predicted_n"] >= 1 and timings["predicted_per_second"] > 0 and timings["prompt_ms"] >= 0
    usage = second.usage_metadata
    assert usage["input_tokens"] == timings["prompt_n"] + timings["cache_n"]
    assert usage["input_token_details"]["cache_read"] >= 80  # the shared system prompt was not prefilled again
    last = list(local_chat_model.stream([("system", system), ("human", "Who reads documents?")], max_tokens=8))[-1]
    assert last.response_metadata["timings"]["cache_n"] >= 80 and last.usage_metadata["output_tokens"] >= 1


@pytest.mark.slow
def test_max_tokens_and_stop_are_respected(local_chat_model):
    counting = [("human", "Count from 1 to 20, separated by commas, and nothing else.")]
    short = local_chat_model.invoke(counting, max_tokens=4)
    assert short.usage_metadata["output_tokens"] == 4 and short.response_metadata["finish_reason"] == "length"
    chunks, stopped = _stream_text(local_chat_model, counting, stop=["7"])
    assert "6" in stopped and "7" not in stopped and "12" not in stopped
    assert local_chat_model.invoke(counting, stop=["7"]).content == stopped


@pytest.mark.slow
def test_two_concurrent_requests_both_complete(local_chat_model):
    questions = {
        "math": "What is 12 plus 30? Answer with the number only.",
        "capital": "What is the capital of France? Answer with one word.",
    }
    answers: dict[str, str] = {}
    errors: list[BaseException] = []

    def ask(key: str, streamed: bool) -> None:
        try:
            msgs = [("human", questions[key])]
            answers[key] = (
                _stream_text(local_chat_model, msgs)[1] if streamed else local_chat_model.invoke(msgs).content
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=("math", True)), threading.Thread(target=ask, args=("capital", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert "42" in answers["math"] and "paris" in answers["capital"].lower()


@pytest.mark.slow
def test_leaving_a_stream_early_cancels_the_generation(local_chat_model):
    loaded = local_server(local_chat_model.server_config())
    stream = local_chat_model.stream([("human", "Write a very long story about a lighthouse keeper.")], max_tokens=400)
    received = [next(stream) for _ in range(3)]
    assert all(isinstance(c, AIMessageChunk) for c in received)
    stream.close()

    def busy() -> bool:
        req = urllib.request.Request(loaded.url + "/slots", headers={"Authorization": f"Bearer {loaded.api_key}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return any(slot["is_processing"] for slot in json.load(resp))

    deadline = time.monotonic() + 30  # a bound on the wait, not a speed assertion: 400 tokens take far longer
    while busy() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not busy()


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_refused_clearly(local_chat_model):
    too_long = [("human", "word " * 5000)]  # a slot holds llm_ctx / llm_parallel = 3,072 tokens
    with pytest.raises(LLMError, match="exceeds the available context size"):
        local_chat_model.invoke(too_long)
    with pytest.raises(LLMError, match="exceeds the available context size"):
        list(local_chat_model.stream(too_long))


@pytest.mark.slow
def test_the_side_http_port_is_locked_with_a_key(local_chat_model):
    loaded = local_server(local_chat_model.server_config())
    assert loaded.url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(loaded.url + "/slots", timeout=10)
    assert info.value.code == 401


# --- the openai backend against a real OpenAI-compatible server on 127.0.0.1 ---------------------------------------


@pytest.mark.slow
def test_openai_backend_against_a_local_openai_compatible_server(local_chat_model, settings):
    """llama.cpp's own HTTP server (same weights, greedy) must give the in-process answer, plain and streamed."""
    loaded = local_server(local_chat_model.server_config())
    remote = get_chat_model(
        settings.with_overrides(llm="openai", openai_base_url=loaded.url + "/v1", openai_model="qwen"),
        openai_api_key=loaded.api_key,
    )
    expected = local_chat_model.invoke(SHORT).content
    plain = remote.invoke(SHORT)
    assert plain.content == expected
    assert plain.usage_metadata["output_tokens"] > 0
    chunks = list(remote.stream(SHORT))
    assert len([c for c in chunks if c.content]) >= 3
    assert "".join(c.content for c in chunks) == expected
    counting = [("human", "Count from 1 to 20, separated by commas, and nothing else.")]
    limited = remote.invoke(counting, max_tokens=4)  # sent as max_completion_tokens: the server must honour it
    assert limited.usage_metadata["output_tokens"] == 4
    assert (
        "".join(c.content for c in remote.stream(counting, stop=["7"]))
        == local_chat_model.invoke(counting, stop=["7"]).content
    )


@pytest.mark.slow
def test_openai_backend_with_a_wrong_key_is_an_error(local_chat_model, settings):
    loaded = local_server(local_chat_model.server_config())
    remote = get_chat_model(
        settings.with_overrides(llm="openai", openai_base_url=loaded.url + "/v1"), openai_api_key="wrong"
    )
    with pytest.raises(Exception, match="401|[Ii]nvalid API [Kk]ey|[Uu]nauthorized"):
        remote.invoke(SHORT)
