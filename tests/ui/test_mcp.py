"""`qa mcp` with the official `mcp` client SDK: the server is a real `qa mcp` subprocess (stdio, and streamable
HTTP with an API key) over a real index in a temp folder, answering with the extractive backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from tests.servers import ANSWER_SECONDS, ROOT, build_index, free_port, run_qa, stop_process

pytestmark = pytest.mark.slow

KEY = "mcp-test-key-0123456789"
SEARCH_KEYS = {"rank", "source", "chunk_id", "start", "end", "score", "text", "page"}
ASK_KEYS = {"question", "answer", "abstained", "citations", "passages", "rewritten_question", "timings_ms"}


@pytest.fixture(scope="module")
def qa_env(tmp_path_factory) -> dict[str, str]:
    env = build_index(tmp_path_factory.mktemp("mcp"))
    return {**env, "QA_LLM": "extractive", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def qa_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    full.update(env)
    return run_qa(*args, env=full, timeout=ANSWER_SECONDS)


@asynccontextmanager
async def stdio_session(env: dict[str, str]):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ui.cli", "mcp"], cwd=str(ROOT), env={**env, "PYTHONPATH": str(ROOT)}
    )
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_stdio_tools_return_the_cli_json_objects(qa_env):
    async def main():
        async with stdio_session(qa_env) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"search", "ask", "status"}
            assert set(tools["search"].input_schema["properties"]) == {"query", "k"}
            assert tools["search"].input_schema["required"] == ["query"]
            assert set(tools["ask"].input_schema["properties"]) == {"question"}
            search = await session.call_tool("search", {"query": "Who co-chaired the dialogue?", "k": 3})
            ask = await session.call_tool("ask", {"question": "Who co-chaired the dialogue?"})
            unanswerable = await session.call_tool("ask", {"question": "What is the population of Gwadar?"})
            status = await session.call_tool("status", {})
            return search, ask, unanswerable, status

    search, ask, unanswerable, status = run(main)
    assert not search.is_error and not ask.is_error
    cli_search = json.loads(qa_cli(qa_env, "search", "--json", "--k", "3", "Who co-chaired the dialogue?").stdout)
    assert search.structured_content == cli_search
    assert set(search.structured_content["results"][0]) == SEARCH_KEYS
    assert json.loads(search.content[0].text) == cli_search  # the text content is the same object

    cli_ask = json.loads(qa_cli(qa_env, "ask", "--json", "Who co-chaired the dialogue?").stdout)
    got = ask.structured_content
    assert set(got) == ASK_KEYS and "Ishaq Dar" in got["answer"] and got["citations"]
    strip = lambda d: {k: v for k, v in d.items() if k != "timings_ms"}  # noqa: E731 - timings differ per run
    assert strip(got) == strip(cli_ask)
    assert unanswerable.structured_content["abstained"] is True
    assert unanswerable.structured_content["citations"] == []
    info = status.structured_content
    assert info["exists"] and info["documents"] == 1 and "extractive" in info["llm"]


def test_bad_input_is_a_tool_error_with_a_clear_message(qa_env):
    async def main():
        async with stdio_session(qa_env) as session:
            return (
                await session.call_tool("ask", {"question": "   "}),
                await session.call_tool("search", {"query": "x" * 5000}),
                await session.call_tool("search", {"query": "Dar", "k": 0}),
                await session.call_tool("ask", {"question": "Who co-chaired the dialogue?"}),
            )

    empty, long_query, bad_k, after = run(main)
    assert empty.is_error and "type a question" in empty.content[0].text
    assert long_query.is_error and "5,000" in long_query.content[0].text
    assert bad_k.is_error and "k" in bad_k.content[0].text
    for result in (empty, long_query, bad_k):
        assert "Traceback" not in result.content[0].text and str(ROOT) not in result.content[0].text
    assert not after.is_error and after.structured_content["citations"]  # the server goes on


def test_without_an_index_the_tools_say_what_to_do(tmp_path):
    env = {
        "QA_SEEDS_DIR": str(tmp_path / "seeds"),
        "QA_DATA_DIR": str(tmp_path / "data"),
        "QA_LLM": "extractive",
        "HF_HUB_OFFLINE": "1",
    }

    async def main():
        async with stdio_session(env) as session:
            return await session.call_tool("ask", {"question": "Who co-chaired the dialogue?"})

    result = run(main)
    assert result.is_error and "qa index build" in result.content[0].text
    assert str(tmp_path) not in result.content[0].text


def test_streamable_http_with_an_api_key(qa_env):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    full.update(qa_env, QA_API_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "mcp", "--http", str(port)],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120
        while True:  # up once it answers at all (401: no key)
            try:
                first = httpx.post(url, json={}, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "qa mcp --http did not start"
                time.sleep(0.3)
        assert first.status_code == 401 and first.json()["error"]["code"] == "invalid_api_key"

        async def main():
            import httpx2

            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as http:
                async with streamable_http_client(url, http_client=http) as (read, write, *_):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await session.call_tool("ask", {"question": "Where will the next round be held?"})

        result = run(main)
        assert not result.is_error and "Islamabad" in result.structured_content["answer"]
    finally:
        stop_process(proc)


def test_http_refuses_remote_without_an_api_key(qa_env):
    r = qa_cli(qa_env, "mcp", "--http", str(free_port()), "--host", "0.0.0.0", "--allow-remote")
    assert r.returncode == 2 and "QA_API_KEY" in r.stderr


def test_a_cancelled_ask_stops_its_answer(qa_env, tmp_path):
    """With the local models: a question in another language is translated (seconds of the 1.5B) before it is
    searched; the client gives up after a second and cancels the call. The server stops that answer (its log says
    so) and answers the next call as usual."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from tests.servers import link_models

    env = {**qa_env, "QA_LLM": "local", "PYTHONPATH": str(ROOT)}
    link_models(Path(env["QA_DATA_DIR"]) / "models")
    log = tmp_path / "mcp.log"  # `qa mcp`'s stderr, where it logs, as an MCP client keeps it
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli", "mcp"], cwd=str(ROOT), env=env)
    gone = "answer stopped: the client cancelled the call"

    async def main():
        with log.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    with anyio.move_on_after(1.0) as scope:
                        await session.call_tool("ask", {"question": "谁共同主持了这次对话？"})
                    assert scope.cancelled_caught, "the call should still be running after a second"
                    deadline = time.monotonic() + ANSWER_SECONDS
                    while gone not in log.read_text() and time.monotonic() < deadline:
                        await anyio.sleep(0.2)
                    assert gone in log.read_text(), "the cancelled call's answer should be stopped"
                    return await session.call_tool("ask", {"question": "Who co-chaired the dialogue?"})

    result = run(main)
    assert not result.is_error and "Dar" in result.structured_content["answer"]
