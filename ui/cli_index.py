"""The `qa index` subcommands (build, rebuild, watch, status) and `qa eval`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from index.load import printable
from index.settings import Settings
from ui.cli_common import (
    JsonOpt,
    SeedsOpt,
    StoreOpt,
    _claim_for_reading,
    _fail,
    _lit,
    _settings,
    _user_errors,
    err,
    out,
)

index_app = typer.Typer(help="Build, rebuild and inspect the index.", no_args_is_help=True)


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
        out.print(
            f"Indexed {report.documents} documents into {report.chunks} chunks in {report.seconds:.1f} s "
            f"({report.embedded} embedded, {report.reused} reused, {report.removed_documents} documents removed)."
        )


@index_app.command("watch")
def index_watch(
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
    debounce: Annotated[
        Optional[float],
        typer.Option(
            "--debounce",
            min=0.0,
            help="Seconds of quiet after a change before rebuilding (default 1, or QA_WATCH_DEBOUNCE_SECONDS).",
        ),
    ] = None,
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
            out.print(
                f"{stamp} Indexed {outcome.documents} documents into {outcome.chunks} chunks in "
                f"{outcome.seconds:.1f} s ({outcome.embedded} embedded, {outcome.reused} reused, "
                f"{outcome.removed_documents} documents removed)."
            )

    watcher = FolderWatcher(
        settings.seeds_dir, rebuild, debounce=settings.watch_debounce_seconds, retry_on=(IndexBusy,), on_done=report
    )
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


def eval_cmd(
    llm: Annotated[str, typer.Option("--llm", help="Comma-separated backends to evaluate.")] = "local",
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            help="Evaluation set (default bench/data/article_eval.json; with --split, squad_eval.json, and the "
            "squad_multilingual.json, squad_followups.json and squad_unanswerable.json beside it).",
        ),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N items of each kind.")] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="article: the seed article's set; dev or test: 42 SQuAD "
            "articles indexed together plus out-of-corpus questions, and apart translated questions, "
            "follow-ups and unanswerable questions about the indexed articles (choose changes on dev, report "
            "test).",
        ),
    ] = "article",
    seeds: SeedsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
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
