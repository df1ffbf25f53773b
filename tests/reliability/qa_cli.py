"""Run the real `qa` command in a subprocess, isolated from the caller's QA_ variables, and check its failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT

TRACEBACK_SIGNS = ("Traceback (most recent call last)", 'File "/')


def qa_env(seeds: Path, data: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    # Wide columns: rich must not wrap a message across lines (tests look for phrases in it).
    env.update(
        QA_SEEDS_DIR=str(seeds),
        QA_DATA_DIR=str(data),
        COLUMNS="400",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        **overrides,
    )
    return env


def qa_command(*args: str) -> list[str]:
    """`qa ARGS` from this checkout (the project need not be pip-installed)."""
    return [sys.executable, "-m", "ui.cli", *args]


def run_qa(
    args: list[str], seeds: Path, data: Path, *, stdin: str | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        qa_command(*args),
        cwd=ROOT,
        env=qa_env(seeds, data, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(*outputs: str) -> None:
    for text in outputs:
        for sign in TRACEBACK_SIGNS:
            assert sign not in text, text[-3000:]
