"""One contract for every door: the same questions through `qa ask --json`, the page's gradio_client `/ask`
endpoint, the OpenAI-compatible API and the MCP server give the same citations (source, start, end) and the same
abstentions. Real index, real servers and clients; the extractive backend answers (deterministic and light)."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.servers import build_index, start_server, stop_process
from tests.ui.test_mcp import qa_cli, stdio_session

pytestmark = pytest.mark.slow

QUESTIONS = {  # question -> abstains
    "Who co-chaired the dialogue?": False,
    "Where will the next round of the dialogue be held?": False,
    "What is the population of Gwadar?": True,
}


def contract(answer: dict) -> tuple:
    """What every door must agree on: the answer's text, whether it abstained, and where its citations point."""
    return (answer["answer"], answer["abstained"], [(c["source"], c["start"], c["end"]) for c in answer["citations"]])


def test_every_door_gives_the_same_citations_and_abstentions(tmp_path):
    env = {**build_index(tmp_path), "QA_LLM": "extractive", "HF_HUB_OFFLINE": "1"}
    doors: dict[str, dict[str, tuple]] = {}

    cli = {}
    for q in QUESTIONS:
        r = qa_cli(env, "ask", "--json", q)
        assert r.returncode == 0, r.stderr
        cli[q] = contract(json.loads(r.stdout))
    doors["cli"] = cli

    async def via_mcp():
        async with stdio_session(env) as session:
            return {
                q: contract((await session.call_tool("ask", {"question": q})).structured_content) for q in QUESTIONS
            }

    doors["mcp"] = anyio.run(via_mcp)

    server, proc = start_server(tmp_path, "contract-server", QA_LLM="extractive")
    try:
        gradio = server.client()
        doors["gradio_client"] = {q: contract(gradio.predict(q, None, api_name="/ask")) for q in QUESTIONS}
        from openai import OpenAI

        openai = OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=300)
        answers = {}
        for q in QUESTIONS:
            reply = openai.chat.completions.create(model="grounded-qa", messages=[{"role": "user", "content": q}])
            answers[q] = contract({"answer": reply.choices[0].message.content, **reply.model_extra})
        doors["openai"] = answers
    finally:
        stop_process(proc)

    for q, abstains in QUESTIONS.items():
        seen = {door: answers[q] for door, answers in doors.items()}
        assert len(set(map(repr, seen.values()))) == 1, f"{q!r} differs between doors: {seen}"
        _, abstained, citations = seen["cli"]
        assert abstained is abstains and bool(citations) is not abstains, (q, seen["cli"])
