"""Query encoding, uncached, one question at a time: the old paths against the ONNX Runtime path, interleaved.

    python -m bench query-encode [--json] [--rounds 3]

Paths, each called once per question in a rotating order (machine load hits them alike):
- `encode`: langchain's HuggingFaceEmbeddings.embed_query -> SentenceTransformer.encode (the first path),
  torch at the process's thread count;
- `single-query`: index.embed.QueryEncoder: the model's torch modules called directly, same threads;
- `onnx`: index.onnx_encoder.OnnxEncoder as served: the exported model in ONNX Runtime, 2 intra-op threads;
- `onnx-1t`: the same file in a session with one thread;
- `single-query-1t`: the torch path on a worker thread whose torch runs one thread.
Per path: wall-clock p50/p95 and CPU time p50 (all threads of the process; less sensitive to other processes).
Questions: the seed article's retrieval set (bench/data/article_retrieval.json), `--rounds` times.
Target (issue #16): the served path's p50 <= 10 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from bench.common import columns_table, latency, log, pct
from index.settings import Settings

TARGET_P50_MS = 10.0
PATHS = ("encode", "single-query", "onnx", "onnx-1t", "single-query-1t")
SERVED = "onnx"


def run(base: Settings, rounds: int = 3) -> dict:
    from index.embed import get_embedder
    from index.onnx_encoder import OnnxEncoder, model_preprocess

    embedder = get_embedder(base)  # before torch is imported: it sets the OpenMP wait policy torch reads at import
    import torch

    served, encoder = embedder._encode_one, embedder.torch_query
    if encoder is None or not isinstance(served, OnnxEncoder):
        raise SystemExit("no ONNX Runtime path for the configured model (see the log): nothing to compare")
    one_thread_onnx = OnnxEncoder(model_preprocess(embedder._client), served.path, threads=1)
    inner = embedder._inner
    items = json.loads((Path(__file__).parent / "data" / "article_retrieval.json").read_text())["questions"]
    questions = [q["question"] for q in items]
    from concurrent.futures import ThreadPoolExecutor

    def one_thread() -> None:
        torch.get_num_threads()
        torch.set_num_threads(1)

    threads = torch.get_num_threads()
    worker = ThreadPoolExecutor(1, initializer=one_thread)
    worker.submit(lambda: None).result()
    torch.set_num_threads(threads)  # the worker keeps its one thread; this thread and later ones get the default
    calls = {
        "encode": inner.embed_query,
        "single-query": encoder,
        "onnx": served,
        "onnx-1t": one_thread_onnx,
        "single-query-1t": lambda q: worker.submit(encoder, q).result(),
    }
    for call in calls.values():  # warm-up: first-call allocations are not per query
        call("warm-up question")
    wall: dict[str, list[float]] = {p: [] for p in PATHS}
    cpu: dict[str, list[float]] = {p: [] for p in PATHS}
    log(f"query-encode: {rounds} x {len(questions)} questions, {len(PATHS)} paths interleaved")
    n = 0
    for _ in range(rounds):
        for q in questions:
            order = PATHS[n % len(PATHS) :] + PATHS[: n % len(PATHS)]
            n += 1
            for p in order:
                c0, w0 = time.process_time(), time.perf_counter()
                calls[p](q)
                wall[p].append(1000 * (time.perf_counter() - w0))
                cpu[p].append(1000 * (time.process_time() - c0))
    rows = {p: {**latency(wall[p]), "cpu_p50_ms": round(statistics.median(cpu[p]), 2)} for p in PATHS}
    for p in PATHS:
        rows[p]["speedup_p50"] = round(rows["encode"]["p50_ms"] / rows[p]["p50_ms"], 2)
    return {
        "questions": len(questions),
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "paths": rows,
        "target_p50_ms": TARGET_P50_MS,
        "served": SERVED,
        "load_average": round(os.getloadavg()[0], 1),
        "target_met": rows[SERVED]["p50_ms"] <= TARGET_P50_MS,
        "served_p95_over_encode_p95": round(pct(wall[SERVED], 95) / pct(wall["encode"], 95), 3),
    }


def render(result: dict, console) -> None:
    table = columns_table(
        "path | p50 ms | p95 ms | CPU p50 ms | x encode (p50)",
        left=("path",),
        title=f"Query encoding, uncached ({result['rounds']} x {result['questions']} questions, "
        f"process torch threads {result['torch_threads']}, load average {result['load_average']})",
    )
    for p, r in result["paths"].items():
        table.add_row(
            p, f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['cpu_p50_ms']:.1f}", f"{r['speedup_p50']:.2f}"
        )
    console.print(table)
    console.print(f"{result['served']} (served) p50 <= {result['target_p50_ms']:.0f} ms: {result['target_met']}")


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--rounds", type=int, default=3, help="times each question is asked per path")

    return main_for("query-encode", __doc__, add_args, lambda s, a: run(s, max(1, a.rounds)), render, argv)


__all__ = ["PATHS", "main", "render", "run"]
