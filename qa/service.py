"""The one API the CLI and the web UI call: ask, stream, status, rebuild.

Heavy parts (embedder, index reader, LLM) are created lazily, once per service, and warm_up() loads them
concurrently so a server is ready sooner. Rebuilds run in-process behind a lock of one; the retriever notices
the atomic pointer switch and reopens, so chats move to the new index without a restart.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from index.settings import Settings
from index.types import BuildReport, IndexBusy
from qa.types import Answer, QAError, StreamEvent

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_question(question: str | None, max_chars: int) -> str:
    """The question with control characters removed; QAError for empty or over-long input."""
    text = _CONTROL.sub(" ", question or "").strip()
    if not text:
        raise QAError("Please type a question.")
    if len(text) > max_chars:
        raise QAError(
            f"The question is too long ({len(text):,} characters; the limit is {max_chars:,}). Please shorten it."
        )
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


def translator(settings: Settings, verifier):
    """What translates a question in another language: the check's model (the packaged 1.5B translates better
    than the packaged 0.5B), unless the answering model is an OpenAI-compatible server, which translates for
    itself (None).

    >>> class Check:
    ...     def translate(self, question, lang, names): ...
    >>> check = Check()
    >>> translator(Settings(_env_file=None), check) == check.translate
    True
    >>> translator(Settings(_env_file=None, llm="openai"), check), translator(Settings(_env_file=None), None)
    (None, None)
    """
    if verifier is None or settings.llm != "local":
        return None
    return verifier.translate


def check_role(settings: Settings, verifier) -> str:
    """What the check's model does, for the status line.

    >>> class Check:
    ...     def translate(self, question, lang, names): ...
    >>> check_role(Settings(_env_file=None), Check())
    'qwen2.5-coder-1.5b, for answers scoring under 0.5; it also translates questions in other languages'
    >>> check_role(Settings(_env_file=None, llm="openai"), Check())
    'qwen2.5-coder-1.5b, for answers scoring under 0.5'
    """
    name = settings.verify_model_path or settings.verify_model
    role = f"{name}, for answers scoring under {settings.verify_below}"
    if translator(settings, verifier) is not None:
        role += "; it also translates questions in other languages"
    return role


class QAService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._init_lock = threading.Lock()
        self._verify_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._embedder = None
        self._retriever = None
        self._llm = None
        self._llm_loaded = False
        self._parts = None
        self._verifier = None
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

    def verifier(self):
        """The answer check (qa/verify.py), or None: turned off, or the extractive backend."""
        s = self.settings
        if not s.checks_answers:
            return None
        with self._verify_lock:
            if self._verifier is None:
                from qa.verify import Verifier

                self._verifier = Verifier(s)
            return self._verifier

    def pipeline_parts(self):
        """The answer pipeline's parts, built once: the retriever, the cached embedder and the model."""
        from qa.pipeline import Parts

        llm = self.llm()
        verifier = self.verifier()
        embedder = self.embedder()
        retriever = self.retriever()
        with self._init_lock:
            if self._parts is None:
                s = self.settings
                self._parts = Parts(
                    retrieve=lambda q, k: retriever.retrieve(q, k),
                    embed=CachedEmbed(embedder),
                    embed_query=embedder.embed_query,
                    known=lambda word: bool(retriever.reader.term_weights(word)),
                    llm=llm,
                    answer_with=s.answer_with,
                    top_k=s.top_k,
                    read_sentences=s.read_sentences,
                    min_relevance=s.min_relevance,
                    tie_margin=s.tie_margin,
                    grammar=s.llm == "local",
                    verify=verifier,
                    verify_below=s.verify_below,
                    verify_none=s.verify_none,
                    translate=translator(s, verifier),
                )
            return self._parts

    def _start_llm(self) -> None:
        """Load the model and process the reader's fixed instructions, so the first question pays for neither."""
        llm = self.llm()
        if llm is None or not hasattr(llm, "load"):
            return
        from qa.read import READER_SYSTEM

        try:
            llm.load()
            llm.invoke([("system", READER_SYSTEM), ("human", "Question: ?\nReply:")], max_tokens=1)
        except Exception as exc:  # the first question reports it properly
            log.warning("LLM load failed: %s", exc)

    def _start_verifier(self) -> None:
        verifier = self.verifier()
        if verifier is None:
            return
        try:
            verifier.load()
        except Exception as exc:  # the first checked answer reports it properly
            log.warning("answer check load failed: %s", exc)

    def warm_up(self) -> None:
        """Load the embedder and the models concurrently, then open the index (if there is one)."""
        threads = [
            threading.Thread(target=self.embedder),
            threading.Thread(target=self._start_llm),
            threading.Thread(target=self._start_verifier),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        from index.types import IndexError_

        try:
            self.pipeline_parts()
            self.retriever().reader
        except IndexError_ as exc:
            log.warning("%s", exc)

    # --- answering -------------------------------------------------------------------------------------------
    def stream(
        self, question: str, history: Sequence | None = None, stop: threading.Event | None = None
    ) -> Iterator[StreamEvent]:
        """Events as they happen: passages, the reader's words, then the final Answer. Closing the iterator
        early (Ctrl-C) stops the generation; so does setting `stop` (the page's Stop, a client that went away), which
        also ends a step that yields nothing while it runs (a translation) and raises Stopped."""
        from qa.pipeline import answer

        q = clean_question(question, self.settings.max_query_chars)  # raised at the first event, like any error
        yield from answer(self.pipeline_parts(), q, clean_history(history), stop)

    def ask(self, question: str, history: Sequence | None = None, stop: threading.Event | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history, stop):
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
        check = self.verifier()
        if check is None:
            info["answer_check"] = "off"
        else:
            info["answer_check"] = check.note or check_role(self.settings, check)
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
            reader = self.retriever().reader
        except Exception:
            return []
        cached = getattr(self, "_examples", None)  # (collection, n, questions): one scan per index build
        if cached is not None and cached[:2] == (reader.collection, n):
            return list(cached[2])
        chunks = list(reader.chunks.values())
        counts: Counter = Counter()
        for c in chunks:
            for m in re.finditer(r"(?<![-\w])([A-Z][a-z]+(?: [A-Z][a-z]+)+)\b(?!-)", c.text):
                counts[m.group(1)] += 1
        phrases = [p for p, _ in counts.most_common(n * 3) if not p.split()[0] in ("The", "On", "In", "Both")]
        self._examples = (reader.collection, n, [f"What does the document say about {p}?" for p in phrases[:n]])
        return list(self._examples[2])

    def rebuild(self, on_progress: Callable[[str, int, int], None] | None = None, force: bool = True) -> BuildReport:
        """Incremental rebuild in this process; a second one while one runs is refused at once."""
        from index.build import build_index

        if not self._rebuild_lock.acquire(blocking=False):
            raise IndexBusy("A rebuild is already running; wait for it to finish.")
        from index.onnx_encoder import set_thread_budget, thread_budget

        threads = thread_budget()
        # One core stays free for the questions answered meanwhile (measured by `python -m bench busy`).
        set_thread_budget(max(1, threads - 1))
        try:
            return build_index(
                self.settings, force=force, progress=False, embedder=self.embedder(), on_progress=on_progress
            )
        finally:
            set_thread_budget(threads)
            self._rebuild_lock.release()
