"""The `qa` command. Human output by default; `--json` prints the public JSON formats (one object per line).

Imports stay light at module level so `qa --help` and `qa index status` never load torch; each command pulls
in what it needs.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Annotated, Optional

import typer

from index.load import printable
from ui.cli_common import (
    JsonOpt,
    SeedsOpt,
    StoreOpt,
    _claim_for_reading,
    _fail,
    _lines,
    _lit,
    _settings,
    _user_errors,
    err,
    out,
    server_log,
)
from ui.cli_index import eval_cmd, index_app

app = typer.Typer(
    help="Grounded question answering over your documents, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index_app, name="index")


# --- search --------------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query, or - to read one query per line from stdin.")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many passages.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | dense | bm25")] = "hybrid",
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank passages for a query (hybrid dense + BM25 by default)."""
    if mode not in ("hybrid", "dense", "bm25"):
        _fail("--mode must be hybrid, dense or bm25.", 2)
    settings = _settings(seeds, store)
    _claim_for_reading(settings)
    from qa.public import search_json
    from qa.service import QAService

    errors = _user_errors()
    service = QAService(settings)
    try:
        service.retriever()
    except errors as exc:
        _fail(str(exc))
    failed = False
    for q in _lines(query):
        try:
            found = search_json(service, q, k, mode)
        except errors as exc:
            failed = True
            if as_json:
                print(json.dumps({"query": q, "error": str(exc)}), flush=True)
                continue
            _fail(str(exc))
        if as_json:
            print(json.dumps(found), flush=True)
        else:
            for r in found["results"]:
                page = f" p. {r['page']}" if r["page"] is not None else ""
                out.print(
                    f"[bold]{r['rank']}.[/] {_lit(r['source'])}{page}:{r['start']}-{r['end']}  score {r['score']:.4f}",
                    markup=True,
                )
                out.print(f"   {' '.join(printable(r['text']).split())}", markup=False)
    if failed:
        raise typer.Exit(1)


# --- ask / chat ----------------------------------------------------------------------------------------------
LlmOpt = Annotated[Optional[str], typer.Option("--llm", help="local | openai | extractive (default: QA_LLM or local)")]


def _service(seeds, store, llm):
    from qa.service import QAService

    if llm is not None and llm not in ("local", "openai", "extractive"):
        _fail("--llm must be local, openai or extractive.", 2)
    settings = _settings(seeds, store, llm=llm)
    _claim_for_reading(settings)
    return QAService(settings)


def _print_sources(answer) -> None:
    if answer.abstained:
        out.print("\n[dim]Related passages:[/]", markup=True)
        for p in answer.passages[:3]:
            text = " ".join(printable(p.text).split())[:160]
            out.print(f"  [{p.n}] {printable(p.source)}:{p.start}-{p.end}  {text}…", markup=False)
        return
    if answer.citations:
        out.print("\n[dim]Sources:[/]", markup=True)
    for c in answer.citations:
        page = f" p. {c.page}" if c.page is not None else ""
        out.print(f"  [{c.n}] {printable(c.source)}{page}:{c.start}-{c.end}  “{printable(c.quote)}”", markup=False)


def _stream_to_terminal(service, question: str, history: list[dict]):
    """Stream the model's tokens, then replace them with the checked, cited answer."""
    answer = None
    shown = False
    for event in service.stream(question, history):
        if event.kind == "token":
            out.print(printable(event.text), end="", markup=False)
            shown = True
        elif event.kind == "answer":
            answer = event.answer
    if shown:
        out.print()
        out.print("[dim]— checked and cited:[/]", markup=True)
    out.print(printable(answer.answer), markup=False)
    _print_sources(answer)
    return answer


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, or - to read one question per line from stdin.")],
    conversation: Annotated[
        bool, typer.Option("--conversation", help="With -: the lines are turns of one conversation.")
    ] = False,
    llm: LlmOpt = None,
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the documents, with cited passages (or say the documents don't say)."""
    service = _service(seeds, store, llm)
    errors = _user_errors()
    history: list[dict] = []
    failed = False
    for q in _lines(question):
        try:
            if as_json:
                answer = service.ask(q, history if conversation else None)
                print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
            else:
                answer = _stream_to_terminal(service, q, history if conversation else [])
        except errors as exc:
            failed = True
            if as_json:
                print(json.dumps({"question": q, "error": str(exc)}, ensure_ascii=False), flush=True)
                continue
            _fail(str(exc))
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer.answer}]
    if failed:
        raise typer.Exit(1)


def _quiet_warm_up(service) -> None:
    try:
        service.warm_up()
    except Exception:  # the first question reports the problem properly
        pass


@app.command()
def chat(llm: LlmOpt = None, seeds: SeedsOpt = None, store: StoreOpt = None) -> None:
    """Interactive chat in the terminal; keeps history. Ctrl-C stops an answer, Ctrl-D (or /quit) leaves."""
    service = _service(seeds, store, llm)
    # Load the models and cache the documents while the user types the first question.
    threading.Thread(target=_quiet_warm_up, args=(service,), name="qa-warm-up", daemon=True).start()
    errors = _user_errors()
    history: list[dict] = []
    out.print("Ask about your documents. [dim]/new clears the history, /quit leaves.[/]", markup=True)
    while True:
        try:
            q = input("\nyou> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if q.strip() in ("/quit", "/exit"):
            return
        if q.strip() == "/new":
            history.clear()
            out.print("[dim]History cleared.[/]", markup=True)
            continue
        try:
            answer = _stream_to_terminal(service, q, history)
        except KeyboardInterrupt:
            out.print("\n[dim](stopped)[/]", markup=True)
            continue
        except errors as exc:
            err.print(f"[red]{_lit(exc)}[/]", markup=True)
            continue
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer.answer}]


# --- serve / mcp / eval ----------------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port")] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow binding to a non-loopback interface.")
    ] = False,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="With --allow-remote: serve without a login.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Rebuild the index when the documents folder changes.")
    ] = True,
    llm: LlmOpt = None,
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
) -> None:
    """Serve the chat UI (default http://127.0.0.1:7860); the documents folder is watched for changes."""
    try:
        from ui.web import serve as serve_web
    except ImportError:
        _fail("The chat UI is not available in this build.")
    settings = _settings(seeds, store, llm=llm)
    server_log()
    try:
        serve_web(settings, host=host, port=port, allow_remote=allow_remote, no_auth=no_auth, watch=watch)
    except _user_errors() as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc), 2)


@app.command()
def mcp(
    http: Annotated[
        Optional[int],
        typer.Option(
            "--http",
            metavar="PORT",
            min=1,
            max=65535,
            help="Serve streamable HTTP on this port (at /mcp) instead of stdio.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="With --http: interface to bind.")] = "127.0.0.1",
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="With --http: allow a non-loopback interface (needs QA_API_KEY).")
    ] = False,
    llm: LlmOpt = None,
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
) -> None:
    """Model Context Protocol server with the tools search, ask and status (stdio, or --http PORT)."""
    if llm is not None and llm not in ("local", "openai", "extractive"):
        _fail("--llm must be local, openai or extractive.", 2)
    from ui.mcp_server import run

    server_log()
    try:
        run(_settings(seeds, store, llm=llm), http_port=http, host=host, allow_remote=allow_remote)
    except ValueError as exc:
        _fail(str(exc), 2)


app.command("eval")(eval_cmd)


def main() -> None:
    try:
        app()
    except OSError as exc:  # a busy port, an unwritable or full disk: a message, not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        err.print(f"[bold red]Error:[/] {_lit((exc.strerror or str(exc)) + where)}", markup=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
