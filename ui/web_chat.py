"""The page's event handlers: ChatApp holds the logic of the chat, votes, uploads and rebuilds over one
QAService, and is testable without a browser. Failures reach people as messages without file paths.
Text from people and documents reaches the page only through ui.web_render, which escapes it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import gradio as gr

from index.settings import Settings
from index.types import IndexError_, IndexMissing
from qa.feedback import record_feedback
from qa.service import QAService
from qa.types import Answer, QAError, Stopped
from index.uploads import save_uploads
from ui import web_render as render
from ui.gate import AnswerGate

log = logging.getLogger(__name__)

MAX_RECORDS = 100  # answers remembered per session (for votes and history); older ones are dropped
# What a stopped answer sends last: Gradio shows an event's last output again when it ends, which would put this
# answer's chat back over the chat of the question that took over.
UNCHANGED = (gr.skip(), gr.skip(), gr.skip())
UNEXPECTED = "Something went wrong while answering. The details are in the server log; please try again."
NO_INDEX = "Nothing is indexed yet: press Rebuild index (or Add documents) and ask again."
_PATH = re.compile(r"file://[^\s'\"<>]*|(?<![\w.:/])/(?:[\w.@+-]+/)*[\w.@+-]+")
_ROOTS: set[str] = set()  # folders of the served settings (data, seeds, store), which may contain spaces


def _roots() -> list[str]:
    """Known folders, longest first: the served settings' folders, the home folder and the temp folder."""
    found = set(_ROOTS)
    for root in (str(Path.home()), os.environ.get("TMPDIR", ""), tempfile.gettempdir()):
        if root.startswith("/") and len(root) > 1:
            found.add(root.rstrip("/"))
    return sorted(found, key=len, reverse=True)


def hide_paths(text: str) -> str:
    """The text with every absolute file-system path and file:// URL replaced: the page never shows where
    files live. Known folders are replaced first, as text, so a path with spaces goes whole."""
    for root in _roots():
        if root in text:
            text = re.sub(re.escape(root) + r"(?![\w.@+-])(?:/[^\s'\"<>]*)?", "(path hidden)", text)
    return _PATH.sub("(path hidden)", text)


def _message(exc: Exception) -> str:
    """What a person sees for a failure: the message of our own errors, never a traceback or a file path."""
    if isinstance(exc, IndexMissing):
        return NO_INDEX
    if isinstance(exc, (QAError, IndexError_)):
        return hide_paths(str(exc)) or UNEXPECTED
    log.error("unexpected error", exc_info=exc)
    return UNEXPECTED


def _session(request: gr.Request | None) -> str:
    """The browser tab's session a page event comes from ("" without one: tests, direct calls)."""
    return getattr(request, "session_hash", None) or ""


def _bounded(records: dict) -> dict:
    """The session's records without the oldest, so that one more fits within MAX_RECORDS."""
    if len(records) < MAX_RECORDS:
        return records
    return {k: records[k] for k in sorted(records)[-(MAX_RECORDS - 1) :]}


class ChatApp:
    """Event handlers of the page, over one QAService. Per-session data lives in Gradio state:
    `records` maps the chat index of each assistant message to what was asked and answered (raw text)."""

    def __init__(self, service: QAService, gate: AnswerGate | None = None):
        self.service = service
        self.settings: Settings = service.settings
        s = self.settings
        _ROOTS.update(
            str(Path(p).absolute()).rstrip("/")
            for p in (s.data_dir, s.seeds_dir, s.store_path)
            if len(str(Path(p).absolute())) > 1
        )
        self.gate = gate or AnswerGate(self.settings.llm_parallel)  # shared with the HTTP API by launch()
        self._stops: dict[str, set[threading.Event]] = {}  # each session's answers under way, to stop them
        self._stops_lock = threading.Lock()

    # --- chat ----------------------------------------------------------------------------------------------
    @staticmethod
    def history(records: dict) -> list[dict]:
        """The conversation so far for the chain's rewriting: completed turns only, in order, raw text."""
        out: list[dict] = []
        for _, rec in sorted(records.items()):
            if rec.get("complete") and not rec.get("error"):
                out += [{"role": "user", "content": rec["question"]}, {"role": "assistant", "content": rec["answer"]}]
        return out

    def respond(
        self, question: str, chat: list | None, records: dict | None, request: gr.Request | None = None
    ) -> Iterator[tuple]:
        """Stream one answer: the bubble fills token by token, the sources panel shows the retrieved passages,
        then the checked answer replaces the raw text and the panel shows what it cites. `stop` for the same
        session (`request`) ends it, a translation under way included."""
        question = question or ""
        if not question.strip() and self._under_way(request):  # Enter or Send again while answering
            yield UNCHANGED
            return
        chat, records = render.stopped(chat), dict(records or {})  # an answer this one took over stays as it was
        history = self.history(records)
        if question.strip():
            chat.append({"role": "user", "content": render.question_html(question)})
        chat.append({"role": "assistant", "content": render.streaming_html("")})
        turn = len(chat) - 1
        record = {
            "question": question[: self.settings.max_query_chars],
            "answer": "",
            "citations": [],
            "abstained": None,
            "complete": False,
        }
        records = _bounded(records)
        sources = render.sources_message("Searching the documents…")
        yield [*chat], sources, records
        raw = ""
        try:
            with (
                self._stoppable(request) as stop,
                self.gate.hold(),
                closing(self.service.stream(question, history, stop)) as events,
            ):
                for event in events:
                    if stop.is_set():  # stopped, or a newer question of this chat took over
                        raise Stopped()
                    if event.kind == "passages":
                        sources = render.retrieved_html(event.passages or [], turn)
                    elif event.kind == "token":
                        raw += event.text
                        chat[turn] = {"role": "assistant", "content": render.streaming_html(raw)}
                        records = {**records, turn: {**record, "answer": raw}}
                    elif event.kind == "answer" and event.answer is not None:
                        chat[turn], sources, records = self._final(event.answer, turn, records)
                        yield [*chat], sources, records
                        return
                    yield [*chat], sources, records
        except Stopped:  # by Stop (the page drops this event's output) or by a newer question
            yield UNCHANGED
        except Exception as exc:  # noqa: BLE001 - every failure becomes a chat message
            message = _message(exc)
            chat[turn] = {"role": "assistant", "content": render.text_html(message)}
            records = {**records, turn: {**record, "answer": message, "error": True}}
            yield chat, render.sources_message(message) if not raw else sources, records

    @contextmanager
    def _stoppable(self, request: gr.Request | None) -> Iterator[threading.Event]:
        """An event that `stop` sets for this session's request, registered while the answer runs."""
        event, session = threading.Event(), _session(request)
        with self._stops_lock:
            self._stops.setdefault(session, set()).add(event)
        try:
            yield event
        finally:
            with self._stops_lock:
                running = self._stops.get(session, set())
                running.discard(event)
                if not running:
                    self._stops.pop(session, None)

    def stop_button(self, chat: list | None, request: gr.Request | None = None) -> list:
        """Stop: the answer under way ends (`stop`) and its bubble says it was stopped."""
        self.stop(request)
        return render.stopped(chat)

    def _under_way(self, request: gr.Request | None) -> bool:
        with self._stops_lock:
            return bool(self._stops.get(_session(request)))

    def stop(self, request: gr.Request | None = None) -> None:
        """Stop the session's answers under way (Stop, New chat, a new question): Gradio cancels the event at its
        next step, and a step that yields nothing meanwhile (the 1.5B's translation) ends at its next token instead
        of running on for seconds, so the next question is taken at once."""
        with self._stops_lock:
            running = list(self._stops.get(_session(request), ()))
        for event in running:
            event.set()

    def _final(self, answer: Answer, turn: int, records: dict) -> tuple[dict, str, dict]:
        numbers = {p.n for p in answer.passages}
        message = {"role": "assistant", "content": render.answer_html(answer.answer, turn, numbers)}
        record = {
            "question": answer.question[: self.settings.max_query_chars],
            "answer": answer.answer,
            "abstained": answer.abstained,
            "citations": [c.to_json() for c in answer.citations],
            "complete": True,
        }
        return message, render.sources_html(answer, turn), {**records, turn: record}

    def take_question(self, question: str, request: gr.Request | None = None) -> tuple[str, str]:
        """Move the typed question out of the input box, which clears at once. An answer of this chat still under
        way is stopped: the new question takes over (two answers streaming into one chat would overwrite each
        other); a blank one changes nothing."""
        if question.strip():
            self.stop(request)
        return "", question

    def pick_example(self, evt: gr.SelectData, request: gr.Request | None = None) -> tuple[str, str]:
        self.stop(request)
        value = evt.value
        return "", value.get("text", "") if isinstance(value, dict) else str(value)

    def new_chat(self, request: gr.Request | None = None) -> tuple[list, dict, str]:
        self.stop(request)
        return [], {}, render.sources_placeholder()

    def like(self, records: dict | None, data: gr.LikeData) -> None:
        """Append a thumbs up/down for an answer, with its question and citations, to the feedback log.
        Error messages and stopped answers take no votes."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (records or {}).get(index) if isinstance(records, dict) else None
        if not isinstance(record, dict) or data.liked not in (True, False):
            return
        if record.get("error") or not record.get("complete"):
            return
        if (
            record_feedback(
                self.settings,
                liked=data.liked,
                question=record["question"],
                answer=record["answer"],
                citations=record.get("citations"),
                abstained=record.get("abstained"),
            )
            is None
        ):
            gr.Info("Feedback is not being saved at the moment.")
            return
        gr.Info("Thanks, your feedback was saved.")

    # --- page state ----------------------------------------------------------------------------------------
    def status(self) -> str:
        try:
            note = getattr(self.service, "llm_note", None)  # why the extractive backend answers, if it does
            status = self.service.status()
            check = status.get("answer_check")  # the check's model, or why it is unavailable (may name a file)
            return render.status_html(
                {**status, "llm_note": note and hide_paths(note), "answer_check": check and hide_paths(check)}
            )
        except Exception as exc:  # noqa: BLE001 - a broken index must not break the page
            return f'<div class="qa-status" id="qa-status">{render.text_html(_message(exc))}</div>'

    def examples(self) -> list[dict]:
        try:
            return [{"text": q} for q in self.service.example_questions(4)]
        except Exception:  # noqa: BLE001 - examples are a convenience
            log.warning("no example questions", exc_info=True)
            return []

    def on_load(self) -> tuple[str, dict]:
        return self.status(), gr.update(examples=self.examples() or None)

    # --- index management ----------------------------------------------------------------------------------
    def rebuild(self, notes: list[str] | None = None) -> Iterator[tuple[str, str]]:
        """Run the incremental rebuild in a worker thread and show its progress as it goes."""
        progress: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                outcome["report"] = self.service.rebuild(on_progress=lambda *step: progress.put(step))
            except Exception as exc:  # noqa: BLE001 - reported to the page below
                outcome["error"] = exc
            finally:
                progress.put(None)

        threading.Thread(target=work, name="qa-web-rebuild", daemon=True).start()
        yield render.progress_html("Starting the rebuild", 0, 0), self.status()
        while (step := progress.get()) is not None:
            yield render.progress_html(*step), gr.skip()
        if "error" in outcome:
            yield render.notice_html(_message(outcome["error"]), notes), self.status()
        else:
            report = outcome["report"]  # its notes may name files (a damaged database moved aside)
            report = dataclasses.replace(report, skipped=[hide_paths(note) for note in report.skipped])
            yield render.report_html(report, notes), self.status()

    def add_documents(self, files: list | None) -> Iterator[tuple[str, str]]:
        """Save uploaded files into the seeds folder (refusing unsafe ones), then rebuild if any were added."""
        paths = [str(f) for f in files or []]
        result = save_uploads([(p, Path(p).name) for p in paths], self.settings)
        notes = [f"Added {name}." for name in result.saved]
        notes += [f"{name} is already in the library." for name in result.duplicates]
        notes += result.rejected
        if not result.saved:
            yield render.notice_html("No documents were added.", notes), self.status()
            return
        yield from self.rebuild(notes)

    # --- API for programs --------------------------------------------------------------------------------
    def ask(self, question: str, history: list | str | None = None) -> dict:
        """Answer one question (optionally with earlier turns, as [user, assistant] pairs or messages JSON) and
        return the same JSON object as `qa ask --json`."""
        if isinstance(history, str):
            try:
                history = json.loads(history) if history.strip() else None
            except json.JSONDecodeError:
                raise gr.Error("history must be JSON: a list of messages or of [user, assistant] pairs.") from None
        try:
            with self.gate.hold():
                return self.service.ask(question, history).to_json()
        except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
            raise gr.Error(_message(exc)) from None


__all__ = ["MAX_RECORDS", "NO_INDEX", "UNEXPECTED", "ChatApp", "hide_paths"]
