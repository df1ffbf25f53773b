"""The one API the CLI and the web UI call: ask, stream, status, rebuild.

Heavy parts (embedder, index reader, LLM) are created lazily, once per service, and warm_up() loads them
concurrently so a server is ready sooner. Rebuilds run in-process behind a lock of one; the retriever notices
the atomic pointer switch and reopens, so chats move to the new index without a restart.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from index.settings import Settings
from index.types import BuildReport, IndexBusy
from qa.types import Answer, QAError, StreamEvent

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Cancelled(Exception):
    pass


def clean_question(question: str | None, max_chars: int) -> str:
    """The question with control characters removed; QAError for empty or over-long input."""
    text = _CONTROL.sub(" ", question or "").strip()
    if not text:
        raise QAError("Please type a question.")
    if len(text) > max_chars:
        raise QAError(f"The question is too long ({len(text):,} characters; the limit is {max_chars:,}). "
                      "Please shorten it.")
    return text


def clean_history(history: Sequence | None) -> list[dict]:
    """Accept messages ([{role, content}]) or pairs ([[user, assistant]]); keep text turns only."""
    out: list[dict] = []
    for item in history or []:
        if isinstance(item, dict) and item.get("role") in ("user", "assistant"):
            content = item.get("content")
            if isinstance(content, list):  # Gradio may send content parts
                content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
            if isinstance(content, str) and content.strip():
                out.append({"role": item["role"], "content": content})
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            for role, content in zip(("user", "assistant"), item):
                if isinstance(content, str) and content.strip():
                    out.append({"role": role, "content": content})
    return out


class CachedEmbed:
    """embed_documents with a bounded memo: passage sentences recur across questions (selection, citing)."""

    def __init__(self, embedder, max_items: int = 50_000):
        self._embedder = embedder
        self._memo: dict[str, list[float]] = {}
        self._max = max_items
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            found = {t: self._memo[t] for t in texts if t in self._memo}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            found.update(zip(missing, self._embedder.embed_documents(missing)))
            with self._lock:
                if len(self._memo) + len(missing) > self._max:
                    self._memo.clear()
                self._memo.update((t, found[t]) for t in missing)
        return [found[t] for t in texts]


class QAService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._init_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._embedder = None
        self._retriever = None
        self._llm = None
        self._llm_loaded = False
        self._chain = None
        self._docs_prompt: tuple[str, str | None] | None = None  # (collection, prompt) of documents mode
        self.documents_mode = True  # False: always passages mode (bench/answer.py compares the two)
        self._auto_prime = False  # set by warm_up: keep the live corpus in the model's prompt cache
        self._priming: str | None = None  # collection whose corpus is being / was sent to the cache
        self._primed: str | None = None  # collection whose corpus is in the cache: documents mode is on
        self.llm_note: str | None = None  # why a fallback backend answers, when it does
        self.watch_status: Callable[[], str] | None = None  # the folder watcher's status line, when one runs

    # --- lazily created parts -----------------------------------------------------------------------------
    def embedder(self):
        with self._init_lock:
            if self._embedder is None:
                from index.embed import get_embedder

                self._embedder = get_embedder(self.settings)
            return self._embedder

    def retriever(self):
        from qa.retrieve import Retriever

        with self._init_lock:
            if self._retriever is None:
                self._retriever = Retriever(self.settings, embedder=self._embedder)
            return self._retriever

    def llm(self):
        """The chat model, or None for the extractive backend (also the fallback when the model is missing)."""
        with self._init_lock:
            if not self._llm_loaded:
                self._llm = self._load_llm()
                self._llm_loaded = True
            return self._llm

    def _load_llm(self):
        if self.settings.llm == "extractive":
            return None
        from qa.llm import get_chat_model

        try:
            return get_chat_model(self.settings)
        except Exception as exc:  # model file missing or corrupt, server unreachable...
            if self.settings.llm_fallback != "extractive":
                raise QAError(f"The answering model is not available: {exc}") from exc
            self.llm_note = f"{exc} — answering with the extractive backend instead."
            log.warning("LLM unavailable, falling back to extractive: %s", exc)
            return None

    def _start_llm(self) -> None:
        llm = self.llm()
        if llm is not None and hasattr(llm, "load"):
            try:
                llm.load()
            except Exception as exc:  # the first question reports it properly
                log.warning("LLM load failed: %s", exc)

    def _prime(self, collection: str | None, prompt: str | None) -> None:
        """Put the fixed system prompt (documents mode: the documents) into the model's prompt cache, so a
        question prefills only its own tokens. Documents mode is used once this has run for the live index.

        The processed prompt is saved to disk, so the next process (a restart, `qa chat`) restores it instead of
        processing the documents again (~10 s)."""
        llm = self.llm()
        if llm is None or not hasattr(llm, "load") or self._restore(collection, prompt):
            return  # nothing to cache, or a saved, processed copy was loaded in milliseconds
        from qa import prompts

        try:
            llm.invoke(prompts.answer_messages("", [], prompt), max_tokens=1)
            key = prompt or prompts.ANSWER_SYSTEM
            if hasattr(llm, "save_prompt") and llm.save_prompt(key):
                llm.restore_prompt(key)  # the other slots too: a second person's first question is as fast
        except Exception as exc:  # the first question reports it properly
            log.warning("LLM warm-up failed: %s", exc)
            return
        if prompt is not None:
            with self._init_lock:
                self._primed = collection

    def chain(self):
        from qa.chain import ChainParts, build_chain

        llm = self.llm()
        embedder = self.embedder()
        retriever = self.retriever()
        with self._init_lock:
            if self._chain is None:
                self._chain = build_chain(ChainParts(
                    retrieve=lambda q, k=None: retriever.retrieve(q, k or self.settings.top_k),
                    embed=CachedEmbed(embedder),
                    llm=llm,
                    max_tokens=self.settings.max_tokens,
                    context_chars=self.settings.context_chars,
                    documents=self._documents_prompt,
                    hint_chars=self.settings.hint_chars,
                    hint_margin=self.settings.hint_margin,
                    top_k=self.settings.top_k,
                    reserve_k=self.settings.reserve_k,
                ))
            return self._chain

    def _corpus_prompt(self) -> tuple[str | None, str | None]:
        """(collection, documents-mode system prompt or None when the corpus is too long) of the live index."""
        from index.types import IndexError_
        from qa.chain import documents_prompt

        try:
            reader = self.retriever().reader
        except IndexError_:
            return None, None
        with self._init_lock:
            cached = self._docs_prompt
        if cached is not None and cached[0] == reader.collection:
            return cached
        # Built outside the lock: questions, page loads and rebuilds never wait on it.
        docs = [(reader.document_title(s), reader.document_text(s)) for s in reader.sources()]
        built = (reader.collection, documents_prompt(docs, self.settings.documents_prompt_chars))
        with self._init_lock:
            self._docs_prompt = built
        return built

    def _documents_prompt(self) -> str | None:
        """Documents mode's system prompt once it is in the model's cache, else None (passages mode).

        The whole corpus costs ~10 s of prefill once and then saves seconds on every question: worth it for a
        server or a chat (warm_up), not for one `qa ask` (unless an earlier process saved the processed
        documents to disk: then restoring them costs milliseconds). After a rebuild, passages mode answers while
        the new corpus is put into the cache in the background.
        """
        if not self.documents_mode:
            return None
        collection, prompt = self._corpus_prompt()
        if prompt is None:
            return None
        with self._init_lock:
            if self._primed == collection:
                return prompt
            start = self._auto_prime and self._priming != collection
            if start:
                self._priming = collection
        if start:
            threading.Thread(target=self._prime, args=(collection, prompt), name="qa-prime", daemon=True).start()
        elif self._restore(collection, prompt):  # saved by an earlier process: free to use
            return prompt
        return None

    def _restore(self, collection: str | None, prompt: str | None) -> bool:
        """Load the system prompt (documents mode: the documents) processed and saved by an earlier process."""
        from qa import prompts

        restore = getattr(self.llm(), "restore_prompt", None)
        try:
            if restore is None or not restore(prompt or prompts.ANSWER_SYSTEM):  # the key save_prompt used
                return False
        except Exception as exc:
            log.warning("could not restore the processed prompt: %s", exc)
            return False
        if prompt is not None:
            with self._init_lock:
                self._primed = collection
        return True

    def warm_up(self) -> None:
        """Load the embedder and the LLM concurrently, open the index (if there is one), then put the fixed
        prompt (documents mode: the documents) into the model's cache and keep it there across rebuilds."""
        threads = [threading.Thread(target=self.embedder), threading.Thread(target=self._start_llm)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        from index.types import IndexError_

        try:
            self.chain()
        except IndexError_ as exc:
            log.warning("%s", exc)
        collection, prompt = self._corpus_prompt()
        with self._init_lock:
            self._auto_prime, self._priming = True, collection
        self._prime(collection, prompt)

    # --- answering -------------------------------------------------------------------------------------------
    def stream(self, question: str, history: Sequence | None = None) -> Iterator[StreamEvent]:
        """Events as they happen: passages, model tokens, then the final Answer. Closing the iterator early
        (a Stop button, Ctrl-C) stops the generation."""
        q = clean_question(question, self.settings.max_query_chars)
        hist = clean_history(history)
        chain = self.chain()
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        done = object()

        def emit(event: StreamEvent) -> None:
            if cancelled.is_set():
                raise _Cancelled()
            events.put(event)

        def run() -> None:
            try:
                answer = chain.invoke({"question": q, "history": hist, "emit": emit})
                events.put(StreamEvent("answer", answer=answer))
            except _Cancelled:
                pass
            except BaseException as exc:  # re-raised in the caller's thread
                events.put(exc)
            finally:
                events.put(done)

        worker = threading.Thread(target=run, name="qa-answer", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    def ask(self, question: str, history: Sequence | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    # --- index ------------------------------------------------------------------------------------------------
    def status(self) -> dict:
        from index.reader import index_status

        info = dict(index_status(self.settings))
        info["embedding_model"] = self.settings.embedding_model
        info["llm"] = self.llm_name()
        if self.watch_status is not None:
            info["watch"] = self.watch_status()
        return info

    def llm_name(self) -> str:
        s = self.settings
        if s.llm == "extractive" or (self._llm_loaded and self._llm is None):
            return "extractive (no generative model)"
        if s.llm == "openai":
            return f"{s.openai_model} via {s.openai_base_url or 'OpenAI'}"
        if s.llm_model_path:
            return s.llm_model_path.name
        size = "1.5B" if "1.5b" in s.llm_model else "0.5B"
        return f"Qwen2.5-Coder-{size}-Instruct (Q4_K_M, local)"

    def document_text(self, source: str) -> str:
        return self.retriever().reader.document_text(source)

    def example_questions(self, n: int = 4) -> list[str]:
        """Questions about the indexed documents' most frequent named things (multi-word capitalised phrases)."""
        try:
            chunks = list(self.retriever().reader.chunks.values())
        except Exception:
            return []
        counts: Counter = Counter()
        for c in chunks:
            for m in re.finditer(r"(?<![-\w])([A-Z][a-z]+(?: [A-Z][a-z]+)+)\b(?!-)", c.text):
                counts[m.group(1)] += 1
        phrases = [p for p, _ in counts.most_common(n * 3) if not p.split()[0] in ("The", "On", "In", "Both")]
        return [f"What does the document say about {p}?" for p in phrases[:n]]

    def rebuild(self, on_progress: Callable[[str, int, int], None] | None = None, force: bool = True) -> BuildReport:
        """Incremental rebuild in this process; a second one while one runs is refused at once."""
        from index.build import build_index

        if not self._rebuild_lock.acquire(blocking=False):
            raise IndexBusy("A rebuild is already running; wait for it to finish.")
        try:
            return build_index(self.settings, force=force, progress=False, embedder=self.embedder(),
                               on_progress=on_progress)
        finally:
            self._rebuild_lock.release()
