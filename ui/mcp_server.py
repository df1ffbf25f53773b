"""`qa mcp`: the answer pipeline as a Model Context Protocol server (the official `mcp` SDK's MCPServer).

Tools, whose structured results are the public JSON objects:
    search(query, k=5)  -> the `qa search --json` object {"query", "results": [...]}
    ask(question)       -> the `qa ask --json` object {"question", "answer", "abstained", "citations", ...}
    status()            -> the `qa index status --json` object plus the embedding model and the answering LLM

Over stdio by default (an assistant or editor starts `qa mcp` itself); `--http PORT` serves streamable HTTP at
http://127.0.0.1:PORT/mcp instead, where QA_API_KEY, when set, is required as `Authorization: Bearer <key>`.
Bad input (an empty or over-long question) is a tool error with a clear message, never a traceback. A call the
client cancels stops its answer at the model's next token (a translation or a follow-up's rewrite).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from typing import Annotated, Any

import anyio
from pydantic import Field

from index.settings import Settings
from index.types import IndexError_, IndexMissing
from qa.public import search_json
from qa.types import QAError, Stopped
from ui.gate import AnswerGate

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Answers questions from the user's own indexed documents, offline, with cited passages. "
    "`ask` returns a checked answer whose [n] markers point at `citations` and `passages` (or "
    "`abstained: true` when the documents don't say); `search` returns ranked passages."
)
NO_INDEX = "Nothing is indexed yet: run `qa index build` (or press Rebuild index in the page) and ask again."


def _tool_error(exc: Exception):
    from mcp.server.mcpserver.exceptions import ToolError

    if isinstance(exc, IndexMissing):
        return ToolError(NO_INDEX)
    if isinstance(exc, (QAError, IndexError_)):
        from ui.web_chat import hide_paths  # the message may name a file; the caller never sees where files live

        return ToolError(hide_paths(str(exc)))
    log.error("unexpected error in an MCP tool", exc_info=exc)
    return ToolError("Something went wrong; the details are in the server log.")


def build_server(service, gate: AnswerGate | None = None):
    """An MCPServer with the search, ask and status tools over one QAService."""
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    gate = gate or AnswerGate(service.settings.llm_parallel)
    server = MCPServer(name="grounded-qa", instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @server.tool(annotations=read_only)
    def search(
        query: Annotated[str, Field(description="What to look for in the documents.")],
        k: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 5,
    ) -> dict[str, Any]:
        """Rank passages of the indexed documents for a query (hybrid dense + BM25). Returns the `qa search
        --json` object: {"query", "results": [{"rank", "source", "chunk_id", "start", "end", "score", "text"}]}."""
        try:
            return search_json(service, query, k)
        except Exception as exc:  # noqa: BLE001 - a tool error with a clear message
            raise _tool_error(exc) from None

    @server.tool(annotations=read_only)
    async def ask(question: Annotated[str, Field(description="A question about the documents.")]) -> dict[str, Any]:
        """Answer a question from the indexed documents with cited passages, or abstain when they don't say.
        Returns the `qa ask --json` object: {"question", "answer", "abstained", "citations": [{"n", "source",
        "chunk_id", "start", "end", "quote"}], "passages": [...], "rewritten_question", "timings_ms"}."""
        stop = threading.Event()  # set when the client cancels: the answer ends at the model's next token

        def answer() -> dict[str, Any]:
            with gate.hold():
                try:
                    return service.ask(question, None, stop).to_json()
                except Stopped:
                    log.info("answer stopped: the client cancelled the call")
                    raise

        try:
            return await anyio.to_thread.run_sync(answer, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            stop.set()
            raise
        except Exception as exc:  # noqa: BLE001
            raise _tool_error(exc) from None

    @server.tool(annotations=read_only)
    def status() -> dict[str, Any]:
        """The index (documents, chunks, when built), the embedding model and the answering model."""
        try:
            return json.loads(json.dumps(service.status(), default=str))
        except Exception as exc:  # noqa: BLE001
            raise _tool_error(exc) from None

    return server


class _BearerKey:
    """ASGI middleware: every HTTP request needs Authorization: Bearer <key>."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.key):
                body = json.dumps(
                    {
                        "error": {
                            "message": "Missing or wrong API key: send the header Authorization: Bearer <QA_API_KEY>.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "invalid_api_key",
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def run(settings: Settings, http_port: int | None = None, host: str = "127.0.0.1", allow_remote: bool = False) -> None:
    """Serve until stdin closes (stdio) or until interrupted (--http). The models load in the background."""
    from qa.service import QAService
    from ui.openai_api import check_api_key
    from ui.web import check_host, check_port

    if http_port is not None:
        check_host(host, allow_remote, no_auth=True)  # no page here: the API key is the login
        check_api_key(settings, allow_remote)
        check_port(host, http_port, "Pass another port to --http.")  # before the models start loading
    service = QAService(settings)

    def warm_up() -> None:
        try:
            service.warm_up()
        except Exception:  # noqa: BLE001 - the first question reports the problem
            log.warning("warm-up failed", exc_info=True)

    threading.Thread(target=warm_up, name="qa-warm-up", daemon=True).start()
    server = build_server(service)
    if http_port is None:
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app(host=host)
    if settings.api_key:
        app = _BearerKey(app, settings.api_key)
    uvicorn.run(app, host=host, port=http_port, log_level="warning")


__all__ = ["build_server", "run"]
