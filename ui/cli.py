"""The `qa` command. Human output by default; `--json` prints the public JSON formats (one object per line).

Imports stay light at module level so `qa --help` and `qa index status` never load torch; each command pulls
in what it needs.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from index.load import printable
from index.settings import Settings, endpoints

app = typer.Typer(help="Grounded question answering over your documents, offline.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
index_app = typer.Typer(help="Build, rebuild and inspect the index.", no_args_is_help=True)
app.add_typer(index_app, name="index")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

SeedsOpt = Annotated[Optional[Path], typer.Option("--seeds", help="Documents folder (default: seeds, or QA_SEEDS_DIR).")]
StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Index folder (default: .qa/store, or QA_STORE_DIR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line).")]


def _settings(seeds: Path | None, store: Path | None, **extra) -> Settings:
    settings = Settings().with_overrides(seeds_dir=seeds, store_dir=store, **extra)
    if settings.chroma_host or settings.llm == "openai":  # say so whenever text leaves this computer
        err.print(f"[dim]{_lit(endpoints(settings))}[/]", markup=True, highlight=False)
    return settings


def _lit(value) -> str:
    """A value to print inside Rich markup, literally: no markup tags, escape sequences or control characters
    (names and messages can hold `[bold]`, `[/]` or an ESC from a document or a file name)."""
    return escape(printable(str(value)))


def _fail(message: str, code: int = 1):
    err.print(f"[bold red]Error:[/] {_lit(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def _claim_for_reading(settings: Settings) -> None:
    """Own the embedded store while this command reads it (opening it writes), or fail with what to do."""
    from index.owner import claim_store

    try:
        claim_store(settings, "read")
    except _user_errors() as exc:
        _fail(str(exc))


def _user_errors():
    from index.types import IndexError_
    from qa.types import QAError

    return (QAError, IndexError_)


def _lines(arg: str):
    """The argument itself, or one item per stdin line when it is '-' (a blank line is an empty query)."""
    if arg != "-":
        yield arg
        return
    for line in sys.stdin:
        yield line.rstrip("\r\n")


# --- index ---------------------------------------------------------------------------------------------------
@index_app.command("build")
def index_build(seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Build the index if there is none or the documents changed."""
    _build(_settings(seeds, store), force=False, as_json=as_json)


@index_app.command("rebuild")
def index_rebuild(seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Rebuild into a new collection (unchanged documents reuse their vectors) and switch atomically."""
    _build(_settings(seeds, store), force=True, as_json=as_json)


def _build(settings: Settings, force: bool, as_json: bool) -> None:
    from index.build import build_index
    from index.owner import claim_store

    try:
        claim_store(settings, "build")  # refuses while `qa serve` or another build holds this store
        report = build_index(settings, force=force, progress=not as_json)
    except _user_errors() as exc:
        _fail(str(exc))
    for warning in report.skipped:
        err.print(f"[yellow]Skipped:[/] {_lit(warning)}", markup=True)
    if as_json:
        print(json.dumps(report.__dict__))
    elif report.up_to_date:
        out.print(f"Index is up to date: {report.documents} documents, {report.chunks} chunks.")
    else:
        out.print(f"Indexed {report.documents} documents into {report.chunks} chunks in {report.seconds:.1f} s "
                  f"({report.embedded} embedded, {report.reused} reused, {report.removed_documents} documents removed).")


@index_app.command("watch")
def index_watch(
    seeds: SeedsOpt = None, store: StoreOpt = None,
    debounce: Annotated[Optional[float], typer.Option("--debounce", min=0.0, help="Seconds of quiet after a change before rebuilding (default 1, or QA_WATCH_DEBOUNCE_SECONDS).")] = None,
) -> None:
    """Keep the index in step with the documents folder: rebuild after each change, until Ctrl-C."""
    import time

    from index.build import build_index
    from index.owner import claim_store
    from index.types import IndexBusy
    from index.watch import FolderWatcher

    settings = _settings(seeds, store, watch_debounce_seconds=debounce)
    try:
        claim_store(settings, "watch")
    except _user_errors() as exc:
        _fail(str(exc))
    from index.embed import get_embedder

    embedder = get_embedder(settings)  # loaded once: every rebuild reuses it

    def rebuild():
        return build_index(settings, force=False, progress=False, embedder=embedder)

    def report(outcome) -> None:
        stamp = time.strftime("%H:%M:%S")
        if isinstance(outcome, Exception):
            err.print(f"{stamp} [bold red]Rebuild failed:[/] {escape(str(outcome))}", markup=True)
            return
        for warning in outcome.skipped:
            err.print(f"{stamp} [yellow]Skipped:[/] {escape(warning)}", markup=True)
        if outcome.up_to_date:
            out.print(f"{stamp} Index is up to date: {outcome.documents} documents, {outcome.chunks} chunks.")
        else:
            out.print(f"{stamp} Indexed {outcome.documents} documents into {outcome.chunks} chunks in "
                      f"{outcome.seconds:.1f} s ({outcome.embedded} embedded, {outcome.reused} reused, "
                      f"{outcome.removed_documents} documents removed).")

    watcher = FolderWatcher(settings.seeds_dir, rebuild, debounce=settings.watch_debounce_seconds,
                            retry_on=(IndexBusy,), on_done=report)
    out.print(f"Watching {settings.seeds_dir} (Ctrl-C stops).", markup=False)
    watcher.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out.print("Stopping…")
    finally:
        watcher.stop(timeout=600)


@index_app.command("status")
def index_status_cmd(seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Documents, chunks, model, dimension, when built, where stored."""
    from index.reader import index_status

    info = index_status(_settings(seeds, store))
    if as_json:
        print(json.dumps(info, default=str))
        return
    if not info.get("exists"):
        where = printable(str(info.get("store")))
        out.print(f"No index yet at {where}. Run `qa index build`.", markup=False)
        raise typer.Exit(1)
    for key, value in info.items():
        out.print(f"{key:>14}: {printable(str(value))}", markup=False)


# --- search --------------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query, or - to read one query per line from stdin.")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many passages.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | dense | bm25")] = "hybrid",
    seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
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
                out.print(f"[bold]{r['rank']}.[/] {_lit(r['source'])}{page}:{r['start']}-{r['end']}  "
                          f"score {r['score']:.4f}", markup=True)
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
    conversation: Annotated[bool, typer.Option("--conversation", help="With -: the lines are turns of one conversation.")] = False,
    llm: LlmOpt = None, seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
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


# --- serve / eval ----------------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow binding to a non-loopback interface.")] = False,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="With --allow-remote: serve without a login.")] = False,
    watch: Annotated[bool, typer.Option("--watch/--no-watch", help="Rebuild the index when the documents folder changes.")] = True,
    llm: LlmOpt = None, seeds: SeedsOpt = None, store: StoreOpt = None,
) -> None:
    """Serve the chat UI (default http://127.0.0.1:7860); the documents folder is watched for changes."""
    try:
        from ui.web import serve as serve_web
    except ImportError:
        _fail("The chat UI is not available in this build.")
    settings = _settings(seeds, store, llm=llm)
    try:
        serve_web(settings, host=host, port=port, allow_remote=allow_remote, no_auth=no_auth, watch=watch)
    except _user_errors() as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc), 2)


@app.command()
def mcp(
    http: Annotated[Optional[int], typer.Option("--http", metavar="PORT", min=1, max=65535,
                                                help="Serve streamable HTTP on this port (at /mcp) instead of stdio.")] = None,
    host: Annotated[str, typer.Option("--host", help="With --http: interface to bind.")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="With --http: allow a non-loopback interface (needs QA_API_KEY).")] = False,
    llm: LlmOpt = None, seeds: SeedsOpt = None, store: StoreOpt = None,
) -> None:
    """Model Context Protocol server with the tools search, ask and status (stdio, or --http PORT)."""
    if llm is not None and llm not in ("local", "openai", "extractive"):
        _fail("--llm must be local, openai or extractive.", 2)
    from ui.mcp_server import run

    try:
        run(_settings(seeds, store, llm=llm), http_port=http, host=host, allow_remote=allow_remote)
    except ValueError as exc:
        _fail(str(exc), 2)


@app.command("eval")
def eval_cmd(
    llm: Annotated[str, typer.Option("--llm", help="Comma-separated backends to evaluate.")] = "local",
    data: Annotated[Optional[Path], typer.Option("--data", help="Evaluation set (default bench/data/article_eval.json).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N items of each kind.")] = None,
    split: Annotated[str, typer.Option("--split", help="article: the seed article's set; dev or test: 42 SQuAD "
                                       "articles indexed together plus out-of-corpus questions (choose changes on "
                                       "dev, report test).")] = "article",
    seeds: SeedsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Accuracy, abstention, citation validity/support, multi-turn accuracy and latency, per backend."""
    if split not in ("article", "dev", "test"):
        _fail(f"--split must be article, dev or test (got {split!r}).")
    backends = [b.strip() for b in llm.split(",") if b.strip()]
    if split == "article":
        _claim_for_reading(_settings(seeds, store))
        from qa.evaluate import print_report as show, run_eval

        def one(settings):
            return run_eval(settings, data_path=data, limit=limit, progress=not as_json)
    else:
        from qa.eval_squad import print_squad_report as show, run_squad_eval

        def one(settings):
            return run_squad_eval(settings, split, data_path=data, limit=limit, progress=not as_json)
    try:
        reports = [one(_settings(seeds, store, llm=b)) for b in backends]
    except _user_errors() as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"backends": reports}))
    else:
        for r in reports:
            show(r, out)


def main() -> None:
    try:
        app()
    except OSError as exc:  # a busy port, an unwritable or full disk: a message, not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        err.print(f"[bold red]Error:[/] {_lit((exc.strerror or str(exc)) + where)}", markup=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
