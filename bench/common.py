"""Small helpers shared by the performance benchmarks: percentiles, RSS, folder size, results files, workspaces."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from index.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ARTICLE = ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency(values_ms: list[float]) -> dict:
    return {"n": len(values_ms), "p50_ms": round(pct(values_ms, 50), 2), "p95_ms": round(pct(values_ms, 95), 2)}


def proc_status_kb(field: str, pid: int | str = "self") -> int | None:
    """A field of /proc/PID/status in kB (VmRSS: resident now, VmHWM: peak resident); None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def isolated(base: Settings, root: Path, seeds: Path, **overrides) -> Settings:
    """Settings whose seeds, data and store live under `root` (embedded Chroma), whatever the environment says."""
    return base.model_copy(
        update={
            "seeds_dir": seeds,
            "data_dir": root / "data",
            "store_dir": root / "store",
            "chroma_host": None,
            **overrides,
        }
    )


def article_seeds(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTICLE, folder / ARTICLE.name)
    return folder


def machine() -> dict:
    return {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def envelope(name: str, argv: list[str] | None, result: dict) -> dict:
    """The result with what, when, which code and on what machine, plus the command that reproduces it."""
    from bench.retrieval import code_version

    args = sys.argv[1:] if argv is None else argv
    return {
        "benchmark": name,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": code_version(),
        "command": "python -m bench " + " ".join([name, *args]),
        "machine": machine(),
        **result,
    }


def save(result: dict, name: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name or result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main_for(name: str, description: str, add_args, run, render, argv: list[str] | None) -> int:
    """The shared `python -m bench NAME [--json] ...` flow: parse, run, save bench/results/NAME.json, print."""
    import argparse

    from rich.console import Console

    parser = argparse.ArgumentParser(
        prog=f"python -m bench {name}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    add_args(parser)
    args = parser.parse_args(argv)
    result = envelope(name, argv, run(Settings(), args))
    result["machine"]["loadavg_after"] = round(os.getloadavg()[0], 2)
    path = save(result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        console = Console(width=max(110, Console().width))
        render(result, console)
        console.print(f"Saved {path}")
    return 0


def columns_table(columns: str, left: tuple[str, ...] = (), **table_args):
    """A rich Table (title, caption, ... from `table_args`) with the columns named in `columns`, separated by " | ",
    right-aligned but those in `left`."""
    from rich.table import Table

    table = Table(**table_args)
    for col in columns.split(" | "):
        table.add_column(col, justify="left" if col in left else "right")
    return table


def qa_command(*args: str) -> list[str]:
    """The `qa` command of this checkout (works without the project being pip-installed)."""
    return [sys.executable, "-m", "ui.cli", *args]


__all__ = [
    "ARTICLE",
    "RESULTS",
    "ROOT",
    "article_seeds",
    "columns_table",
    "envelope",
    "folder_bytes",
    "isolated",
    "latency",
    "log",
    "machine",
    "main_for",
    "pct",
    "proc_status_kb",
    "qa_command",
    "save",
]
