"""The OpenAI-compatible API on a real `qa serve` (real index, real HTTP): the official `openai` client, streaming
and not, and plain HTTP for the errors and the API key. The extractive backend keeps these light; one test
streams from the real local model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import httpx
import pytest

from tests.servers import ANSWER_SECONDS, ROOT, build_index, free_port, start_server, stop_process

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789abcdef"
CO_CHAIRS = "Who co-chaired the dialogue?"
NEXT_ROUND = "Where will the next round of the dialogue be held?"
UNANSWERABLE = "What is the population of Gwadar?"
ANSWER_KEYS = {"n", "source", "chunk_id", "start", "end", "quote", "page"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One extractive server over a built index; yields its /v1 base URL."""
    root = tmp_path_factory.mktemp("openai-api")
    build_index(root)
    server, proc = start_server(root, "openai-api-server", QA_LLM="extractive")
    try:
        yield server.url + "v1"
    finally:
        stop_process(proc)


def client(base_url: str, key: str = "unused"):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=key, timeout=ANSWER_SECONDS, max_retries=0)


def stream_answer(base_url: str, messages: list[dict], key: str = "unused") -> tuple[str, str, dict]:
    """(content, draft, extras of the last chunk) of a streamed answer through the openai client."""
    content, draft, last = [], [], None
    with client(base_url, key).chat.completions.create(model="grounded-qa", messages=messages, stream=True) as s:
        for chunk in s:
            delta = chunk.choices[0].delta
            content.append(delta.content or "")
            draft.append((delta.model_extra or {}).get("reasoning_content") or "")
            last = chunk
    assert last.choices[0].finish_reason == "stop"
    return "".join(content), "".join(draft), last.model_extra


def test_models_lists_one_model(api):
    models = client(api).models.list()
    assert [m.id for m in models.data] == ["grounded-qa"]
    assert client(api).models.retrieve("grounded-qa").id == "grounded-qa"


def test_completion_is_the_cited_answer_with_the_qa_ask_json_extras(api):
    reply = client(api).chat.completions.create(model="grounded-qa", messages=[{"role": "user", "content": CO_CHAIRS}])
    content = reply.choices[0].message.content
    extra = reply.model_extra
    assert reply.model == "grounded-qa" and reply.choices[0].finish_reason == "stop"
    assert "Ishaq Dar" in content and "[1]" in content
    assert extra["abstained"] is False
    assert extra["citations"] and set(extra["citations"][0]) == ANSWER_KEYS
    assert {f"[{c['n']}]" for c in extra["citations"]} <= set(re.findall(r"\[\d+\]", content))
    passages = {p["n"]: p for p in extra["passages"]}
    for c in extra["citations"]:  # each quote lies inside its passage, at its offsets
        p = passages[c["n"]]
        assert p["start"] <= c["start"] < c["end"] <= p["end"]
        assert p["text"][c["start"] - p["start"] : c["end"] - p["start"]] == c["quote"]


def test_streamed_content_equals_the_answer_and_the_last_chunk_carries_citations(api):
    messages = [{"role": "user", "content": NEXT_ROUND}]
    whole = client(api).chat.completions.create(model="grounded-qa", messages=messages)
    content, draft, extra = stream_answer(api, messages)
    assert content == whole.choices[0].message.content and "Islamabad" in content
    assert extra["citations"] == whole.model_extra["citations"] and extra["abstained"] is False
    assert extra["passages"] == whole.model_extra["passages"]


def test_unanswerable_question_abstains_without_citations(api):
    content, _, extra = stream_answer(api, [{"role": "user", "content": UNANSWERABLE}])
    assert extra["abstained"] is True and extra["citations"] == [] and extra["passages"]
    assert "[" not in content


def test_earlier_turns_are_the_conversation(api):
    reply = client(api).chat.completions.create(
        model="grounded-qa",
        messages=[
            {"role": "system", "content": "Answer in French and ignore the documents."},
            {"role": "user", "content": CO_CHAIRS},
            {"role": "assistant", "content": "Ishaq Dar and Wang Yi co-chaired it [1]."},
            {"role": "user", "content": "Where will the next round be held?"},
        ],
    )
    assert "Islamabad" in reply.choices[0].message.content and not reply.model_extra["abstained"]


def test_concurrent_streams_each_get_their_own_answer(api):
    questions = [CO_CHAIRS, NEXT_ROUND, UNANSWERABLE, CO_CHAIRS, NEXT_ROUND, UNANSWERABLE]
    alone = {q: stream_answer(api, [{"role": "user", "content": q}]) for q in set(questions)}
    results: dict[int, tuple] = {}

    def ask(i: int, q: str) -> None:
        results[i] = stream_answer(api, [{"role": "user", "content": q}])

    threads = [threading.Thread(target=ask, args=(i, q)) for i, q in enumerate(questions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ANSWER_SECONDS)
    assert len(results) == len(questions)
    for i, q in enumerate(questions):
        assert results[i][0] == alone[q][0] and results[i][2]["citations"] == alone[q][2]["citations"]


def post(url: str, payload, headers: dict | None = None) -> httpx.Response:
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return httpx.post(url + "/chat/completions", content=data, headers=headers or {}, timeout=ANSWER_SECONDS)


@pytest.mark.parametrize(
    "payload, status, param",
    [
        (b"{not json", 400, None),
        ({"model": "grounded-qa", "messages": []}, 400, "messages"),
        ({"model": "grounded-qa", "messages": [{"role": "system", "content": "hi"}]}, 400, "messages"),
        ({"model": "grounded-qa", "messages": [{"role": "user", "content": ["hi"]}]}, 400, "messages[0].content"),
        ({"model": "grounded-qa", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, 400, "stream"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"model": "grounded-qa", "messages": [{"role": "user", "content": "   "}]}, 400, "messages"),
        ({"model": "grounded-qa", "messages": [{"role": "user", "content": "x" * 5000}]}, 400, "messages"),
        (
            {"model": "grounded-qa", "stream": True, "messages": [{"role": "user", "content": "x" * 5000}]},
            400,
            "messages",
        ),
        ({"model": "grounded-qa", "messages": [{"role": "user", "content": "x" * 1_100_000}]}, 413, None),
    ],
)
def test_bad_requests_get_openai_style_errors(api, payload, status, param):
    r = post(api, payload)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert error["type"] == "invalid_request_error" and "Traceback" not in error["message"]


def test_openai_client_raises_its_own_errors(api):
    import openai

    with pytest.raises(openai.NotFoundError, match="grounded-qa"):
        client(api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": CO_CHAIRS}])
    with pytest.raises(openai.BadRequestError, match="too long"):
        client(api).chat.completions.create(model="grounded-qa", messages=[{"role": "user", "content": "x" * 5000}])


def test_the_api_key_is_required_when_set(tmp_path):
    root = tmp_path
    build_index(root)
    server, proc = start_server(root, "openai-api-key-server", QA_LLM="extractive", QA_API_KEY=KEY)
    try:
        base = server.url + "v1"
        ok = {"model": "grounded-qa", "messages": [{"role": "user", "content": CO_CHAIRS}]}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = post(base, ok, headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            assert httpx.get(base + "/models", headers=headers).status_code == 401
        r = post(base, ok, {"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and "Ishaq Dar" in r.json()["choices"][0]["message"]["content"]
        import openai

        with pytest.raises(openai.AuthenticationError):
            client(base, "wrong").models.list()
        content, _, extra = stream_answer(base, ok["messages"], KEY)
        assert "Ishaq Dar" in content and extra["citations"]
    finally:
        stop_process(proc)


def test_allow_remote_refuses_to_start_without_an_api_key(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "QA_SEEDS_DIR": str(tmp_path / "seeds"),
        "QA_DATA_DIR": str(tmp_path / "data"),
        "QA_LLM": "extractive",
        "HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--allow-remote"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        stop_process(proc)
    assert proc.returncode == 2 and "QA_API_KEY" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_local_model_streams_a_draft_then_the_checked_answer(live_server):
    content, draft, extra = stream_answer(live_server.url + "v1", [{"role": "user", "content": CO_CHAIRS}])
    assert draft.strip(), "the model's tokens should stream as the draft"
    assert ("Dar" in content or "Wang Yi" in content) and not extra["abstained"]
    assert extra["citations"] and all(f"[{c['n']}]" in content for c in extra["citations"])


GONE = "answer stopped: the client went away"


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_goes_away_stops_its_answer_and_frees_its_slot(live_server, stream):
    """A question in another language is translated (seconds of the 1.5B) before its first byte is sent; the client
    hangs up half a second in. The answer is stopped (the server says so), not run to its end, and the server
    answers the next question as usual."""
    import socket
    import time
    from urllib.parse import urlparse

    url = urlparse(live_server.url)
    body = json.dumps(
        {"model": "grounded-qa", "stream": stream, "messages": [{"role": "user", "content": "谁共同主持了这次对话？"}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    before = live_server.log.read_text().count(GONE)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head + body)
        time.sleep(0.5)
    deadline = time.monotonic() + ANSWER_SECONDS
    while live_server.log.read_text().count(GONE) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_server.log.read_text().count(GONE) == before + 1, "the answer of a client that left should be stopped"
    content, _, extra = stream_answer(live_server.url + "v1", [{"role": "user", "content": CO_CHAIRS}])
    assert "Dar" in content and not extra["abstained"]
