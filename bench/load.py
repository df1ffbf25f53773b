"""Load: N concurrent chat sessions against a real `qa serve`, each asking several questions about the article.

    python -m bench.load [--sessions N] [--questions M] [--url http://127.0.0.1:7860/] [--json]

Without --url it builds the index if needed (`qa index build`), starts `qa serve` on a free 127.0.0.1 port (QA_*
variables apply; --llm overrides QA_LLM) and stops it at the end. Each session is its own gradio_client Client
(its own Gradio session and state) in its own thread, asking its questions one after another through the
page's /chat endpoint, each as a new chat (with --conversation: as turns of one chat). Session i asks question
(i + j) mod P at step j, with P = one question per session (at most the set's size), so sessions running side by
side ask different questions and an answer that went to the wrong session would show.

Every question is first asked alone, one at a time. Under load each answer is checked against that: correct
(contains a gold alias), cited (has [n] markers), the same text and highlighted quotes, and its own (its own
question in the bubble, its own chat only, not another question's answer). Bounded: sessions x questions
requests, each within --answer-timeout seconds, the whole run within --timeout seconds; what did not run counts
as an error. Exit code 0 only with no errors, no mixed answers and nothing worse than when asked alone.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, qa_command
from tests.servers import free_port, launch, run_qa, stop_process

DEFAULT_DATA = ROOT / "bench" / "data" / "article_eval.json"
STARTUP_SECONDS = 300
_TAG = re.compile(r"<[^>]+>")
_QUOTE = re.compile(r'<mark class="qa-quote">(.*?)</mark>', re.S)


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    aliases: tuple[str, ...]


@dataclass
class Result:
    """One answer as the page returned it, reduced to what the checks need."""

    item: Item
    session: int  # -1: asked alone
    step: int
    seconds: float = 0.0
    error: str | None = None
    answer: str = ""  # plain text of the final bubble
    markers: int = 0  # [n] links in it
    quotes: tuple[str, ...] = ()  # highlighted supporting sentences in the sources panel
    user: str = ""  # the question shown in the user bubble
    messages: int = 0  # messages in the returned chat
    problems: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        from qa.text import normalize

        text = normalize(self.answer)
        return self.error is None and any(normalize(a) in text for a in self.item.aliases)

    @property
    def cited(self) -> bool:
        return self.error is None and self.markers > 0


def load_items(path: Path | None = None) -> list[Item]:
    """The answerable questions of the evaluation set, with their gold aliases."""
    data = json.loads(Path(path or DEFAULT_DATA).read_text(encoding="utf-8"))
    return [Item(x["id"], x["question"], tuple(x["answers"])) for x in data["answerable"] if x.get("answers")]


def plan(items: list[Item], sessions: int, questions: int) -> list[list[Item]]:
    """Questions per session: session i asks pool[(i + j) % P] at step j, P = min(sessions, len(items))."""
    pool = items[: max(1, min(sessions, len(items)))]
    return [[pool[(i + j) % len(pool)] for j in range(questions)] for i in range(sessions)]


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _plain(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", fragment)).split())


def _ask(client, item: Item, chat: list, timeout: float) -> tuple[list, str]:
    job = client.submit(item.question, chat, api_name="/chat")
    try:
        return job.result(timeout=timeout)
    except TimeoutError:
        job.cancel()
        raise TimeoutError(f"no answer within {timeout:.0f} s") from None


def _record(result: Result, chat: list, sources: str, expected_messages: int) -> None:
    if not chat or chat[-1].get("role") != "assistant":
        result.error = "the chat came back without an answer"
        return
    bubble = _text(chat[-1])
    result.answer = _plain(bubble)
    result.markers = bubble.count('class="qa-cite"')
    result.quotes = tuple(_plain(q) for q in _QUOTE.findall(sources or ""))
    result.user = _plain(_text(chat[-2])) if len(chat) >= 2 else ""
    result.messages = len(chat)
    if "qa-cursor" in bubble:
        result.error = "the answer stopped before it was final"
    if result.user != " ".join(result.item.question.split()):
        result.problems.append(f"mixed: the user bubble shows {result.user[:80]!r}")
    if result.messages != expected_messages:
        result.problems.append(f"mixed: the chat has {result.messages} messages, expected {expected_messages}")


def _client(url: str, auth: tuple[str, str] | None):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False, download_files=False, analytics_enabled=False)


def ask_alone(
    url: str, items: list[Item], *, auth=None, answer_timeout: float = 300, deadline: float = float("inf")
) -> dict[str, Result]:
    """Each distinct question once, one at a time, each in a new session: the reference answers."""
    client = _client(url, auth)
    out: dict[str, Result] = {}
    for step, item in enumerate(dict.fromkeys(items)):
        result = out[item.id] = Result(item, -1, step)
        if time.monotonic() > deadline:
            result.error = "not run: the time limit was reached"
            continue
        client.reset_session()
        started = time.perf_counter()
        try:
            chat, sources = _ask(client, item, [], answer_timeout)
            _record(result, chat, sources, 2)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding of the run
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
    return out


def _wait(barrier: threading.Barrier, timeout: float) -> None:
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:  # a session could not connect in time: the others go on
        pass


def _session(
    url: str,
    auth,
    index: int,
    items: list[Item],
    conversation: bool,
    answer_timeout: float,
    deadline: float,
    start: threading.Barrier,
    results: list[Result],
) -> None:
    mine = [Result(item, index, step) for step, item in enumerate(items)]
    results.extend(mine)
    try:
        client = _client(url, auth)
    except Exception as exc:  # noqa: BLE001
        for r in mine:
            r.error = f"cannot connect: {type(exc).__name__}: {exc}"
        return
    finally:
        _wait(start, answer_timeout)
    chat: list = []
    for step, result in enumerate(mine):
        if time.monotonic() > deadline:
            result.error = "not run: the time limit was reached"
            continue
        if not conversation:
            client.reset_session()  # a new chat: fresh Gradio state, no history
            chat = []
        started = time.perf_counter()
        try:
            chat, sources = _ask(client, result.item, chat, answer_timeout)
            _record(result, chat, sources, 2 * (step + 1) if conversation else 2)
        except Exception as exc:  # noqa: BLE001
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _latency(values: list[float]) -> dict:
    return {
        "p50": round(_pct(values, 0.5), 2),
        "p95": round(_pct(values, 0.95), 2),
        "max": round(max(values), 2) if values else 0.0,
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


def compare(results: list[Result], alone: dict[str, Result]) -> None:
    """Add a problem to each answer that is worse than its alone answer or is another question's answer."""
    others = {r.answer: r.item.id for r in alone.values() if r.answer}
    for r in results:
        if r.error:
            continue
        ref = alone[r.item.id]
        # Another question's answer, word for word, that does not answer this one (two questions may share a
        # short correct answer: "Ishaq Dar [1]" answers both "who co-chaired?" and, wrongly, "the Chinese co-chair?").
        if r.answer != ref.answer and others.get(r.answer, r.item.id) != r.item.id and not r.correct:
            r.problems.append(f"mixed: this is the answer to {others[r.answer]}")
        if ref.correct and not r.correct:
            r.problems.append("incorrect under load (correct alone)")
        if ref.cited and not r.cited:
            r.problems.append("uncited under load (cited alone)")


def run_load(
    url: str,
    sessions: int = 16,
    questions: int = 5,
    *,
    data_path: Path | None = None,
    conversation: bool = False,
    answer_timeout: float = 300,
    timeout: float = 1800,
    auth: tuple[str, str] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict:
    """Ask alone, then under load, and return the report (see the module docstring)."""
    deadline = time.monotonic() + timeout
    plans = plan(load_items(data_path), sessions, questions)
    distinct = list(dict.fromkeys(item for p in plans for item in p))
    log(f"asking {len(distinct)} questions alone ...")
    alone = ask_alone(url, distinct, auth=auth, answer_timeout=answer_timeout, deadline=deadline)

    log(f"{sessions} sessions x {questions} questions at once ...")
    results: list[Result] = []
    start = threading.Barrier(sessions + 1)
    threads = [
        threading.Thread(
            target=_session,
            name=f"load-session-{i}",
            daemon=True,
            args=(url, auth, i, p, conversation, answer_timeout, deadline, start, results),
        )
        for i, p in enumerate(plans)
    ]
    for t in threads:
        t.start()
    _wait(start, answer_timeout)
    began = time.perf_counter()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + answer_timeout + 30)
    wall = time.perf_counter() - began
    for r in results:
        if not r.error and not r.answer and not r.problems:
            r.error = "not finished when the run ended"
    compare(results, alone)

    done = [r for r in results if not r.error]
    times = [r.seconds for r in done]
    per_question = []
    for item in distinct:
        ref, mine = alone[item.id], [r for r in results if r.item.id == item.id]
        per_question.append(
            {
                "id": item.id,
                "question": item.question,
                "alone": {
                    "correct": ref.correct,
                    "cited": ref.cited,
                    "seconds": round(ref.seconds, 2),
                    "error": ref.error,
                    "answer": ref.answer,
                },
                "load": {
                    "asked": len(mine),
                    "correct": sum(r.correct for r in mine),
                    "cited": sum(r.cited for r in mine),
                    "same_text": sum(r.answer == ref.answer for r in mine if not r.error),
                    "same_quotes": sum(r.quotes == ref.quotes for r in mine if not r.error),
                },
            }
        )
    report = {
        "url": url,
        "sessions": sessions,
        "questions_per_session": questions,
        "conversation": conversation,
        "requests": len(results),
        "answered": len(done),
        "errors": sum(1 for r in results if r.error),
        "mixed": sum(1 for r in results if any(p.startswith("mixed") for p in r.problems)),
        "incorrect_vs_alone": sum(1 for r in results if "incorrect under load (correct alone)" in r.problems),
        "uncited_vs_alone": sum(1 for r in results if "uncited under load (cited alone)" in r.problems),
        "correct": sum(r.correct for r in results),
        "cited": sum(r.cited for r in results),
        "same_text_as_alone": sum(r.answer == alone[r.item.id].answer for r in done),
        "same_quotes_as_alone": sum(r.quotes == alone[r.item.id].quotes for r in done),
        "alone_errors": sum(1 for r in alone.values() if r.error),
        "alone_correct": sum(r.correct for r in alone.values()),
        "alone_cited": sum(r.cited for r in alone.values()),
        "latency_s": _latency(times),
        "alone_latency_s": _latency([r.seconds for r in alone.values() if not r.error]),
        "wall_s": round(wall, 2),
        "throughput_answers_per_s": round(len(done) / wall, 3) if wall > 0 else 0.0,
        "problems": [
            {"session": r.session, "step": r.step, "id": r.item.id, "error": r.error, "problems": r.problems}
            for r in results
            if r.error or r.problems
        ],
        "per_question": per_question,
    }
    report["ok"] = not (
        report["errors"]
        or report["mixed"]
        or report["incorrect_vs_alone"]
        or report["uncited_vs_alone"]
        or report["alone_errors"]
    )
    return report


# --- a server of our own ---------------------------------------------------------------------------------------


@contextmanager
def qa_server(env: dict[str, str], log: Callable[[str], None] = lambda _msg: None) -> Iterator[str]:
    """`qa index build` (a no-op when up to date), then `qa serve` on a free 127.0.0.1 port; yields its URL."""
    built = run_qa("index", "build", "--json", env=env, timeout=STARTUP_SECONDS)
    if built.returncode != 0:
        raise RuntimeError(f"`qa index build` failed: {built.stderr.strip()[-2000:]}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.NamedTemporaryFile("w+", prefix="qa-serve-", suffix=".log") as out:
        proc = launch(qa_command("serve", "--port", str(port)), env, out)
        try:
            log(f"started `qa serve` (pid {proc.pid}) on {url}")
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if proc.poll() is not None:
                    out.seek(0)
                    raise RuntimeError(f"`qa serve` exited with {proc.returncode}: {out.read()[-2000:]}")
                try:
                    with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                        break
                except urllib.error.HTTPError as exc:
                    if exc.code == 401:  # up, behind a login
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"`qa serve` was not ready after {STARTUP_SECONDS} s")
                time.sleep(0.5)
            yield url
        finally:
            stop_process(proc)


def render(report: dict, console) -> None:
    from rich.table import Table

    lat, alone = report["latency_s"], report["alone_latency_s"]
    console.print(
        f"[bold]{report['sessions']} sessions x {report['questions_per_session']} questions[/] "
        f"against {report['url']}{' (conversations)' if report['conversation'] else ''}"
    )
    console.print(
        f"answered {report['answered']}/{report['requests']}, errors {report['errors']}, "
        f"mixed {report['mixed']}, worse than alone: {report['incorrect_vs_alone']} incorrect, "
        f"{report['uncited_vs_alone']} uncited; correct {report['correct']}, cited {report['cited']}, "
        f"same text as alone {report['same_text_as_alone']}, same highlighted quotes "
        f"{report['same_quotes_as_alone']}"
    )
    console.print(
        f"latency p50 {lat['p50']} s, p95 {lat['p95']} s, max {lat['max']} s (alone: p50 {alone['p50']} s); "
        f"throughput {report['throughput_answers_per_s']} answers/s over {report['wall_s']} s"
    )
    table = Table(
        "id", "alone correct", "alone cited", "alone s", "asked", "correct", "cited", "same text", "same quotes"
    )
    for q in report["per_question"]:
        a, b = q["alone"], q["load"]
        table.add_row(
            q["id"],
            str(a["correct"]),
            str(a["cited"]),
            f"{a['seconds']:.1f}",
            str(b["asked"]),
            str(b["correct"]),
            str(b["cited"]),
            str(b["same_text"]),
            str(b["same_quotes"]),
        )
    console.print(table)
    for p in report["problems"][:20]:
        console.print(
            f"  session {p['session']} step {p['step']} {p['id']}: {p['error'] or '; '.join(p['problems'])}",
            markup=False,
        )
    console.print("[green]OK[/]" if report["ok"] else "[red]NOT OK[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--questions", type=int, default=5, help="questions per session")
    parser.add_argument("--url", help="a running server (default: start `qa serve` on a free port)")
    parser.add_argument("--auth", help="user:password, for a server with QA_AUTH set")
    parser.add_argument("--llm", choices=["local", "openai", "extractive"], help="QA_LLM for the started server")
    parser.add_argument("--conversation", action="store_true", help="each session is one chat (follow-up turns)")
    parser.add_argument(
        "--data", type=Path, default=None, help=f"question set (default {DEFAULT_DATA.relative_to(ROOT)})"
    )
    parser.add_argument("--answer-timeout", type=float, default=300, help="seconds for one answer")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.questions < 1:
        parser.error("--sessions and --questions must be at least 1")
    env = {**os.environ, **({"QA_LLM": args.llm} if args.llm else {})}
    login = args.auth or (None if args.url else env.get("QA_AUTH"))
    auth = tuple(login.split(":", 1)) if login and ":" in login else None

    from rich.console import Console

    console = Console(stderr=args.json)
    log = lambda msg: Console(stderr=True).print(f"[dim]{msg}[/dim]")
    try:
        with nullcontext(args.url) if args.url else qa_server(env, log) as url:
            report = run_load(
                url,
                args.sessions,
                args.questions,
                data_path=args.data,
                conversation=args.conversation,
                answer_timeout=args.answer_timeout,
                timeout=args.timeout,
                auth=auth,
                log=log,
            )
    except RuntimeError as exc:
        Console(stderr=True).print(f"[red]Error:[/] {exc}", markup=True, highlight=False)
        return 2
    report["command"] = "python -m bench.load " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        render(report, console)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
