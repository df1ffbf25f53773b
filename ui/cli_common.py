"""What every `qa` subcommand shares: the consoles, the common options, settings from flags, and how a failure
is printed. Light imports only (`qa --help` and `qa index status` never load torch)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from index.load import printable
from index.settings import Settings, endpoints

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

SeedsOpt = Annotated[
    Optional[Path], typer.Option("--seeds", help="Documents folder (default: seeds, or QA_SEEDS_DIR).")
]
StoreOpt = Annotated[
    Optional[Path], typer.Option("--store", help="Index folder (default: .qa/store, or QA_STORE_DIR).")
]
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


def server_log() -> None:
    """The project's own log lines on stderr, at INFO, with the time: what a server serves and where, rebuilds the
    watcher postponed, answers stopped because their client went away. Other libraries' logs are left as they are.
    For the long-running commands (`qa serve`, `qa mcp`) only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    for name in ("index", "qa", "ui"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
            logger.propagate = False  # not twice where the caller logs too
