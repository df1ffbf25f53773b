"""The OpenAI-compatible HTTP API, served beside the chat page by `qa serve`.

    GET  /v1/models                  one model, `grounded-qa`
    GET  /v1/models/grounded-qa
    POST /v1/chat/completions        the last user message is the question, earlier user/assistant turns the
                                     conversation; system messages are ignored (the answering rules are fixed)

The reply is a standard chat completion whose `choices[0].message.content` is the checked, cited answer (with
its `[n]` markers) and which carries, beside the standard fields, `citations`, `passages` and `abstained`
exactly as `qa ask --json` prints them.

With `"stream": true` the reply is server-sent events in OpenAI's chunk format. The model's raw tokens are a
draft: code re-aligns the citations and may replace the whole text by an abstention after the model is done,
so they stream as `delta.reasoning_content` (shown as "thinking" by clients that know the field, ignored by
the others). The checked answer then streams as `delta.content`, so the content a client assembles is always
exactly the checked answer; the last chunk (`finish_reason: "stop"`) carries `citations`, `passages` and
`abstained`, and `data: [DONE]` ends the stream.

Answers run in worker threads (the event loop never waits on the pipeline) and share the page's limit on
concurrent answers (an AnswerGate of `llm_parallel`). When `QA_API_KEY` is set every request needs
`Authorization: Bearer <key>`. Errors are OpenAI-style: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from index.types import IndexError_, IndexMissing
from qa.types import Answer, QAError, Stopped, StreamEvent
from ui.gate import AnswerGate, until_gone

log = logging.getLogger(__name__)

MODEL = "grounded-qa"
MODEL_CREATED = 1767225600  # 2026-01-01: a fixed date, so the listing never changes
MAX_BODY_BYTES = 1_000_000
MAX_MESSAGES = 200
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_PIECE = re.compile(r"\S+\s*|\s+")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# --- request parsing (pure logic, tested without a server) ----------------------------------------------------
def _text(content, where: str) -> str:
    """A message's text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ApiError(
                    400,
                    f'{where}.content: only text parts ({{"type": "text", "text": ...}}) are supported.',
                    param=f"{where}.content",
                )
            parts.append(part["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise ApiError(400, f"{where}.content must be a string or a list of text parts.", param=f"{where}.content")


def parse_chat_request(body) -> tuple[str, list[dict], bool]:
    """(question, history, stream) from a chat completions request body, or ApiError (4xx)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise ApiError(400, f"You must provide a model parameter (this server offers `{MODEL}`).", param="model")
    if not isinstance(model, str):
        raise ApiError(400, "model must be a string.", param="model")
    if model != MODEL:
        raise ApiError(
            404,
            f"The model `{model[:100]}` does not exist; this server offers `{MODEL}`.",
            param="model",
            code="model_not_found",
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false.", param="stream")
    n = body.get("n", 1)
    if n not in (1, None) or isinstance(n, bool):
        raise ApiError(400, "Only n=1 is supported.", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects.", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ApiError(400, f"Too many messages ({len(messages)}; the limit is {MAX_MESSAGES}).", param="messages")
    turns: list[dict] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content.", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}.", param=f"{where}.role")
        text = _text(message.get("content"), where)
        if role in ("user", "assistant"):
            turns.append({"role": role, "content": text})
    last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=None)
    if last_user is None:
        raise ApiError(400, "messages must contain a user message: the last one is the question.", param="messages")
    return turns[last_user]["content"], turns[:last_user], stream


def check_question(question: str, max_chars: int) -> None:
    """A 400 for what the pipeline would refuse as a question (it checks again, with the same limits)."""
    text = question.strip()
    if not text:
        raise ApiError(400, "Please type a question: the last user message is empty.", param="messages")
    if len(text) > max_chars:
        raise ApiError(
            400,
            f"The question is too long ({len(text):,} characters; the limit is {max_chars:,}). Please shorten it.",
            param="messages",
            code="question_too_long",
        )


# --- responses -----------------------------------------------------------------------------------------------
def _extras(answer: Answer) -> dict:
    data = answer.to_json()
    return {"citations": data["citations"], "passages": data["passages"], "abstained": data["abstained"]}


def completion_json(answer: Answer, completion_id: str, created: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        **_extras(answer),
    }


def _chunk(completion_id: str, created: int, delta: dict, finish: str | None = None, **extra) -> bytes:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def answer_pieces(text: str) -> list[str]:
    """The checked answer cut into word-sized deltas (joined, they are the text exactly)."""
    return _PIECE.findall(text)


def chunks_for(events: Iterator[StreamEvent] | list[StreamEvent], completion_id: str, created: int) -> Iterator[bytes]:
    """SSE chunks for a stream of pipeline events (after the role chunk): draft tokens as reasoning_content,
    then the checked answer as content, then the closing chunk with the answer's citations."""
    for event in events:
        if event.kind == "token" and event.text:
            yield _chunk(completion_id, created, {"reasoning_content": event.text})
        elif event.kind == "answer" and event.answer is not None:
            for piece in answer_pieces(event.answer.answer):
                yield _chunk(completion_id, created, {"content": piece})
            yield _chunk(completion_id, created, {}, "stop", **_extras(event.answer))
            return


def _pipeline_error(exc: BaseException) -> ApiError:
    from ui.web_chat import NO_INDEX, hide_paths

    if isinstance(exc, IndexMissing):
        return ApiError(503, NO_INDEX, code="index_missing", kind="server_error")
    if isinstance(exc, (QAError, IndexError_)):
        return ApiError(503, hide_paths(str(exc)), code="unavailable", kind="server_error")
    log.error("unexpected error while answering", exc_info=exc)
    return ApiError(
        500, "Something went wrong while answering; the details are in the server log.", kind="server_error"
    )


def _gone() -> Response:
    """The reply to a request whose client went away while it was answered (nobody reads it: nginx's 499)."""
    log.info("answer stopped: the client went away")
    return Response(status_code=499)


# --- the routes ------------------------------------------------------------------------------------------------
class OpenAIApi:
    def __init__(self, service, gate: AnswerGate):
        self.service = service
        self.settings = service.settings
        self.gate = gate

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
        ]

    def _check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if not key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), key.encode()):
            raise ApiError(
                401,
                "Missing or wrong API key: send the header Authorization: Bearer <QA_API_KEY>.",
                code="invalid_api_key",
            )

    @staticmethod
    def _model_json() -> dict:
        return {"id": MODEL, "object": "model", "created": MODEL_CREATED, "owned_by": "grounded-qa"}

    async def models(self, request: Request) -> Response:
        try:
            self._check_key(request)
        except ApiError as err:
            return err.response()
        return JSONResponse({"object": "list", "data": [self._model_json()]})

    async def model(self, request: Request) -> Response:
        try:
            self._check_key(request)
            name = request.path_params["model"]
            if name != MODEL:
                raise ApiError(
                    404,
                    f"The model `{name[:100]}` does not exist; this server offers `{MODEL}`.",
                    param="model",
                    code="model_not_found",
                )
        except ApiError as err:
            return err.response()
        return JSONResponse(self._model_json())

    async def _body(self, request: Request):
        size = 0
        raw = bytearray()
        async for part in request.stream():
            size += len(part)
            if size > MAX_BODY_BYTES:
                raise ApiError(
                    413, f"The request is too large (the limit is {MAX_BODY_BYTES:,} bytes).", code="request_too_large"
                )
            raw += part
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.") from None

    async def chat_completions(self, request: Request) -> Response:
        try:
            self._check_key(request)
            question, history, stream = parse_chat_request(await self._body(request))
            check_question(question, self.settings.max_query_chars)
        except ApiError as err:
            return err.response()
        if self.gate.waiting >= self.settings.max_queue:  # the page's queue is as long
            return ApiError(
                429,
                "The server is busy answering other questions; please retry shortly.",
                code="server_busy",
                kind="rate_limit_error",
            ).response()
        ids = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())  # the completion's id and creation time
        stop = threading.Event()  # set when the client goes away: its answer ends at the model's next token
        if not stream:
            async with self.gate.slot():
                try:
                    answer = await until_gone(request, stop, self.service.ask, question, history, stop)
                except Stopped:
                    return _gone()
                except Exception as exc:  # noqa: BLE001 - an error object, never a traceback
                    return _pipeline_error(exc).response()
            return JSONResponse(completion_json(answer, *ids))
        return await self._stream(request, stop, question, history, ids)

    async def _stream(
        self, request: Request, stop: threading.Event, question: str, history: list[dict], ids: tuple[str, int]
    ) -> Response:
        completion_id, created = ids
        await self.gate.acquire_async()
        events = self.service.stream(question, history, stop)
        try:  # the first event (or the error) before any header: a failure is still a plain error response
            first = await until_gone(request, stop, next, events, None)
        except BaseException as exc:
            await anyio.to_thread.run_sync(events.close)
            self.gate.release()
            if isinstance(exc, Stopped):
                return _gone()
            if isinstance(exc, Exception):
                return _pipeline_error(exc).response()
            raise

        async def body() -> AsyncIterator[bytes]:
            try:
                yield _chunk(completion_id, created, {"role": "assistant", "content": ""})
                event = first
                while event is not None:
                    for data in chunks_for([event], completion_id, created):
                        yield data
                    if event.kind == "answer":
                        break
                    event = await until_gone(request, stop, next, events, None)
                yield b"data: [DONE]\n\n"
            except Stopped:
                _gone()  # logged; nobody is there to read a reply
            except Exception as exc:  # noqa: BLE001 - after the headers, an error travels as an event
                yield f"data: {json.dumps(_pipeline_error(exc).body())}\n\n".encode()
                yield b"data: [DONE]\n\n"
            finally:  # also when the client went away: closing stops the generation
                stop.set()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(events.close)
                self.gate.release()

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )


def check_api_key(settings, allow_remote: bool) -> None:
    """Serving other machines needs an API key (ValueError with what to do)."""
    if allow_remote and not settings.api_key:
        raise ValueError(
            "--allow-remote needs an API key for the HTTP API: set QA_API_KEY to a long random "
            "secret (clients send it as Authorization: Bearer <key>), and QA_AUTH=user:password "
            "for the page."
        )


__all__ = [
    "ApiError",
    "OpenAIApi",
    "answer_pieces",
    "check_api_key",
    "check_question",
    "chunks_for",
    "completion_json",
    "parse_chat_request",
]
