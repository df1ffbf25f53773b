"""`python -m bench retrieval [--json] [--squad-articles 20] [--chunk-sizes 300,400,500,600,800]` (and `all`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("give positive integers separated by commas, e.g. 300,500,800")
    return values


def _ratios(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(not 0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError("give overlap ratios in [0, 1) separated by commas, e.g. 0.1,0.2")
    return values


# Benchmarks: each module has its own main(argv) and options.
PERF = {
    "ingest": "bench.ingest",
    "ingest-process": "bench.ingest_process",
    "encoder": "bench.encoder",
    "scale": "bench.scale",
    "answer": "bench.answer",
    "coldstart": "bench.coldstart",
    "memory": "bench.coldstart:memory_main",
    "plots": "bench.plots",
    "adversarial": "bench.adversarial",
    "watch": "bench.watch",
    "api": "bench.api",
    "busy": "bench.busy",
    "pdf-answers": "bench.pdf_answers",
    "query-encode": "bench.query_encode",
    "search-scale": "bench.search_scale",
    "search-scale-server": "bench.search_scale:server_main",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in PERF:
        import importlib

        module, _, func = PERF[args[0]].partition(":")
        return getattr(importlib.import_module(module), func or "main")(args[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog="Also: " + ", ".join(PERF) + " (python -m bench NAME --help).",
    )
    parser.add_argument(
        "benchmark",
        choices=["retrieval", "all"],
        help="'all' is what `make bench` runs: for now the retrieval benchmark",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--squad-articles", type=int, default=20, help="SQuAD v1.1 train articles to index")
    parser.add_argument(
        "--squad-questions", type=int, default=1000, help="seeded sample of their questions to ask (0: all)"
    )
    parser.add_argument("--chunk-sizes", type=_ints, default=[300, 400, 500, 600, 800], help="chunk sizes to sweep")
    parser.add_argument("--overlap-ratios", type=_ratios, default=[0.2], help="chunk_overlap as a share of chunk_size")
    parser.add_argument(
        "--repeat", type=int, default=2, help="timings at the configured chunk size are the best of this many runs"
    )
    parser.add_argument(
        "--context-chars",
        type=int,
        default=None,
        help="prompt budget sizes are compared at (default: top_k x chunk_size of the settings)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/retrieval.json)")
    args = parser.parse_args(argv)

    from rich.console import Console

    from bench import retrieval
    from index.settings import Settings

    console = Console(stderr=args.json, width=max(110, Console().width))
    settings = Settings()  # the entry point: QA_ variables and .env apply (model, batch size); stores stay temporary
    result = retrieval.run(
        settings,
        args.chunk_sizes,
        args.overlap_ratios,
        squad_articles=args.squad_articles,
        squad_questions=args.squad_questions,
        seed=args.seed,
        repeat=max(1, args.repeat),
        context_chars=args.context_chars,
        log=lambda msg: Console(stderr=True).print(f"[dim]{msg}[/dim]"),
    )
    result["command"] = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    path = retrieval.save(result, args.out) if args.out else retrieval.save(result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        retrieval.render(result, console)
        console.print(f"Saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
