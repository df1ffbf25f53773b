"""The chat models behind one LangChain interface: the in-process local GGUF model, or an OpenAI-compatible server.

`local` runs llama.cpp in this process through xllamacpp. One server is loaded per process and shared by every
caller: it batches concurrent requests itself (continuous batching over `n_parallel` slots) and keeps each
slot's processed prompt, so a fixed system prompt is not prefilled again on the next question. Tokens are
streamed from a worker thread as llama.cpp produces them; a consumer that stops iterating cancels the request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict

from index.settings import Settings
from qa.types import QAError


log = logging.getLogger(__name__)


class LLMError(QAError):
    """The language model could not be loaded or could not answer (clear message for the user)."""


class ServerOptions(BaseModel):
    """The llama.cpp server options a LocalChatModel takes, passed on in its ServerConfig."""

    # The three the settings expose take their defaults from there (llm_ctx, llm_parallel, llm_threads).
    n_ctx: int = Settings.model_fields["llm_ctx"].default  # shared by the slots: n_ctx / n_parallel each
    n_parallel: int = Settings.model_fields["llm_parallel"].default
    n_threads: int = Settings.model_fields["llm_threads"].default
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: Literal["auto", "on", "off"] = "auto"
    kv_unified: bool = False
    cache_ram_mib: int = 256  # host-RAM store of evicted slot prompts; the 8 GiB default lets RSS grow


class ServerConfig(ServerOptions):
    """Everything that shapes a loaded llama.cpp server; one server exists per distinct config."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_path: str


@dataclass(frozen=True)
class LocalServer:
    """A loaded xllamacpp.Server. llama.cpp also serves an OpenAI-compatible HTTP API on `url` (127.0.0.1, a
    free port); it is locked with a random `api_key` so no other local user can drive it or read /slots."""

    server: Any
    url: str
    api_key: str


_servers: dict[ServerConfig, LocalServer] = {}
_servers_lock = threading.Lock()


def local_server(config: ServerConfig) -> LocalServer:
    """The process-wide server for `config`, loaded on first use (thread-safe)."""
    with _servers_lock:
        server = _servers.get(config)
        if server is None:
            server = _servers[config] = _load_server(config)
        return server


def _load_server(config: ServerConfig) -> LocalServer:
    # llama.cpp's CPU threads meet at an OpenMP barrier after every op. With libgomp's default busy-wait, a
    # thread descheduled by any other busy process (the embedder, a second request, another program) stalls
    # its partner's spin: measured on 2 shared cores, decode fell from ~6 to ~0.5 tokens/s. Sleeping waits keep
    # it at the 1-thread rate. libgomp reads this once, when the first OpenMP library loads (torch or this).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp  # deferred: loading the native library is not free, and `qa --help` never needs it

    if not Path(config.model_path).is_file():
        raise LLMError(f"The model file {config.model_path} does not exist.")
    p = xllamacpp.CommonParams()
    p.model.path = str(config.model_path)
    p.n_ctx = config.n_ctx
    p.n_parallel = config.n_parallel
    p.n_batch = config.n_batch
    p.n_ubatch = config.n_ubatch
    p.kv_unified = config.kv_unified
    p.cache_ram_mib = config.cache_ram_mib
    p.cpuparams.n_threads = config.n_threads
    p.cpuparams_batch.n_threads = config.n_threads
    p.flash_attn_type = {
        "auto": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO,
        "on": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        "off": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }[config.flash_attn]
    p.verbosity = -1  # llama.cpp logs every request to stderr otherwise; the CLI output must stay clean
    # llama.cpp's "fit" pass adjusts what is left unset (GPU layers) to the devices' free memory; with no GPU it
    # changes nothing here, and it costs ~1 s of every load (the 1.5B: 3.1 s -> 2.1 s, alternating runs).
    p.fit_params = False
    p.sampling.temp = 0.0
    p.ui = False  # no llama.cpp web UI on the side port
    api_key = secrets.token_urlsafe(24)
    p.api_keys = [api_key]
    try:
        server = xllamacpp.Server(p)
    except Exception as exc:  # the native side only says "failed to init server"
        raise LLMError(f"The local model {Path(config.model_path).name} could not be loaded: {exc}") from exc
    # No request is made here: warm-up (QAService.warm_up) sends each model its own fixed instructions ahead of the
    # first question, and on first use the real request pays the page faults itself (one made here would only add
    # its own prompt, ~0.6 s for the 1.5B).
    return LocalServer(server=server, url=server.listening_address, api_key=api_key)


_END = object()  # the last item of a streamed request's queue
_TIMED_OUT = object()  # what a stream reader takes instead when the queue stayed empty for timeout_s


def _get(items: queue.SimpleQueue, timeout: float) -> Any:
    try:
        return items.get(timeout=timeout)
    except queue.Empty:
        return _TIMED_OUT


async def _aget(items: asyncio.Queue, timeout: float) -> Any:
    try:
        return await asyncio.wait_for(items.get(), timeout=timeout)
    except asyncio.TimeoutError:
        return _TIMED_OUT


class LocalChatModel(BaseChatModel, ServerOptions):
    """A GGUF model run in-process by llama.cpp (xllamacpp), with real token streaming.

    Response metadata carries llama.cpp's `timings` of the call (prompt_n: prompt tokens processed,
    cache_n: prompt tokens reused from the cache, prompt_per_second, predicted_per_second, ...) and
    `usage_metadata` the token counts, with cached prompt tokens as `input_token_details.cache_read`.
    """

    model_path: Path
    temperature: float = 0.0
    max_tokens: int | None = 160
    stop: list[str] | None = None
    n_cache_reuse: int = 0  # >0: reuse cached chunks of at least this many tokens even when shifted
    timeout_s: float = 300.0  # longest wait for the next token before the call fails

    @property
    def _llm_type(self) -> str:
        return "xllamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path), "temperature": self.temperature, "max_tokens": self.max_tokens}

    def server_config(self) -> ServerConfig:
        options = {name: getattr(self, name) for name in ServerOptions.model_fields}
        return ServerConfig(model_path=str(self.model_path), **options)

    def load(self) -> None:
        """Load the model now (e.g. at start-up, alongside the embedder) instead of on the first question."""
        local_server(self.server_config())

    # --- requests -----------------------------------------------------------------------------------------

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any) -> dict:
        request: dict[str, Any] = {
            "messages": convert_to_openai_messages(messages),
            "temperature": kwargs.get("temperature", self.temperature),
            "cache_prompt": True,
            "stream": stream,
        }
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        stops = [*(self.stop or []), *(stop or [])]
        if stops:
            request["stop"] = stops
        if self.n_cache_reuse:
            request["n_cache_reuse"] = self.n_cache_reuse
        if kwargs.get("grammar"):  # llama.cpp GBNF: the reply can only take this form
            request["grammar"] = kwargs["grammar"]
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        server = local_server(self.server_config()).server
        response = server.handle_chat_completions(self._request(messages, stop, stream=False, **kwargs))
        raise_for_error(response)
        choice = response["choices"][0]
        metadata = _metadata(response, choice.get("finish_reason"), self.model_path)
        message = AIMessage(
            content=choice["message"].get("content") or "",
            response_metadata=metadata,
            usage_metadata=_usage(response.get("timings")),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        items: queue.SimpleQueue = queue.SimpleQueue()
        cancelled = self._start(self._request(messages, stop, stream=True, **kwargs), items.put)
        try:
            while (chunk := self._chunk(_get(items, self.timeout_s))) is not _END:
                if chunk is not None:
                    yield chunk
        finally:
            cancelled.set()  # stops generation at the next token if the consumer left early

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        # If the loop is gone, call_soon_threadsafe raises inside the callback, which also ends the request.
        cancelled = self._start(
            self._request(messages, stop, stream=True, **kwargs),
            lambda item: loop.call_soon_threadsafe(items.put_nowait, item),
        )
        try:
            while (chunk := self._chunk(await _aget(items, self.timeout_s))) is not _END:
                if chunk is not None:
                    yield chunk
        finally:
            cancelled.set()

    def _start(self, request: dict, put: Callable[[Any], None]) -> threading.Event:
        """Run one streamed request in a worker thread; `put` receives each chunk dict, then any error, then _END.

        Returns the event that cancels it: llama.cpp stops the request when the chunk callback returns True.
        """
        cancelled = threading.Event()
        config = self.server_config()

        def on_chunk(chunk: dict) -> bool:
            if cancelled.is_set():
                return True
            put(chunk)
            return False

        def work() -> None:
            outcome: list[Any] = []
            try:
                local_server(config).server.handle_chat_completions(request, on_chunk)
            except BaseException as exc:  # handed to the consumer, which raises it in its own thread
                outcome.append(exc)
            outcome.append(_END)
            try:
                for item in outcome:
                    put(item)
            except RuntimeError:  # the consumer's event loop is closed: nobody is listening any more
                pass

        threading.Thread(target=work, name="llm-stream", daemon=True).start()
        return cancelled

    def _chunk(self, item: Any) -> ChatGenerationChunk | object | None:
        """One item taken from a stream's queue as a LangChain chunk, the last one carrying timings and usage.

        _END stays _END (the stream is over); an event with no text gives None (nothing to yield); an error,
        from the worker or in the event, or a wait past timeout_s (_TIMED_OUT) raises.
        """
        if item is _END:
            return _END
        if item is _TIMED_OUT:
            raise LLMError(f"The local model produced nothing for {self.timeout_s:.0f} s.")
        if isinstance(item, BaseException):
            raise item
        raise_for_error(item)
        choice = (item.get("choices") or [{}])[0]
        text = delta_text(item)
        finish = choice.get("finish_reason")
        if finish is None and "timings" not in item:
            return ChatGenerationChunk(message=AIMessageChunk(content=text)) if text else None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=text,
                response_metadata=_metadata(item, finish, self.model_path),
                usage_metadata=_usage(item.get("timings")),
                chunk_position="last",
            )
        )


def delta_text(chunk: dict) -> str:
    """The text a streamed chunk adds ("" for one that carries none, such as the closing timings)."""
    return ((chunk.get("choices") or [{}])[0].get("delta") or {}).get("content") or ""


def raise_for_error(response: dict) -> None:
    """LLMError with llama.cpp's message when a response (or a streamed chunk) is an error."""
    error = response.get("error")
    if error is None and {"code", "message"} <= response.keys():  # bare error objects from the wrapper
        error = response
    if error is not None:
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        raise LLMError(f"The local model refused the request: {message}")


def _metadata(response: dict, finish_reason: str | None, model_path: Path) -> dict[str, Any]:
    return {"model_name": Path(model_path).name, "finish_reason": finish_reason, "timings": response.get("timings", {})}


def _usage(timings: dict | None) -> UsageMetadata | None:
    if not timings:
        return None
    cached = int(timings.get("cache_n", 0))
    prompt = int(timings.get("prompt_n", 0)) + cached
    completion = int(timings.get("predicted_n", 0))
    return UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=prompt + completion,
        input_token_details={"cache_read": cached},
    )


def get_chat_model(settings: Settings, openai_api_key: str | None = None) -> BaseChatModel:
    """The chat model for `settings.llm`: the packaged local model, or an OpenAI-compatible server.

    `openai_api_key` comes from the entry point (OPENAI_API_KEY); when None, langchain-openai looks it up.
    """
    if settings.llm == "local":
        from qa.model_file import ensure_model_file

        model_path = ensure_model_file(settings)
        return LocalChatModel(
            model_path=model_path,
            n_ctx=settings.llm_ctx,
            n_parallel=settings.llm_parallel,
            n_threads=settings.llm_threads,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )
    if settings.llm == "openai":
        from langchain_openai import ChatOpenAI
        from openai import OpenAIError

        try:
            return ChatOpenAI(
                model=settings.openai_model,
                base_url=settings.openai_base_url,
                api_key=openai_api_key,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                stream_usage=True,
                timeout=120,
                max_retries=1,
            )
        except OpenAIError as exc:
            raise LLMError(
                f"QA_LLM=openai needs an API key in OPENAI_API_KEY (any non-empty value for a local "
                f"server without keys): {exc}"
            ) from exc
    raise LLMError(f"QA_LLM={settings.llm!r} has no generative chat model; the answer chain handles it without one.")


__all__ = [
    "LLMError",
    "LocalChatModel",
    "LocalServer",
    "ServerConfig",
    "ServerOptions",
    "delta_text",
    "get_chat_model",
    "local_server",
    "raise_for_error",
]
