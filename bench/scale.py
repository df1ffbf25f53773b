"""Retrieval as the corpus grows: the seed article, ~1k and ~10k chunks of SQuAD v1.1 train paragraphs.

    python -m bench scale [--json] [--sizes 1000,10000] [--queries 20] [--full-builds]

Per size: a real `build_index` (time, store size on disk), then, in a fresh process (so RSS and open time belong
to that size alone): `open_index` time, BM25 load time next to the time to rebuild BM25 from the same texts (the
index persists BM25, so a process start pays the load, not the build), and per-query latency of
`Retriever.retrieve(q, top_k, mode)` for hybrid and dense, interleaved query by query, query encoding included
(what a person waits for); the encoding alone is reported too. Questions are a seeded sample of the SQuAD
questions of the indexed articles (the article's own set for the article). Data: SQuAD v1.1 (Rajpurkar et al.,
2016), CC BY-SA 4.0. 100k chunks is not run by default: embedding it takes about an hour on 2 busy cores; `--sizes 100000` does it when there is time (SQuAD train holds ~40k chunks at
the default chunking, so larger sizes reuse articles under new names).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import article_seeds, columns_table, folder_bytes, isolated, latency, log, pct, proc_status_kb
from index.settings import Settings

MODES = ("hybrid", "dense")
TARGETS_MS = {"article": 20.0, "100k": 50.0}  # hybrid p50


def pick_articles(chunk_counts: list[int], target: int) -> list[int]:
    """Indexes of articles, in order and cycling when the corpus runs out, until their chunks reach `target`."""
    if target <= 0 or not any(chunk_counts):
        raise ValueError("need a positive target and articles with chunks")
    picked, total, i = [], 0, 0
    while total < target:
        j = i % len(chunk_counts)
        if chunk_counts[j]:
            picked.append(j)
            total += chunk_counts[j]
        i += 1
    return picked


def probe(settings: Settings, questions: list[str], k: int) -> dict:
    """Run in a fresh process: open the index, time BM25 load vs build, then per-query latency per mode."""
    from index.bm25 import Bm25Index
    from index.embed import get_embedder
    from index.reader import open_index
    from index import store
    from qa.retrieve import Retriever

    embedder = get_embedder(settings)
    embedder.embed_query("warm-up")
    rss_model_kb = proc_status_kb("VmRSS")
    started = time.perf_counter()
    reader = open_index(settings, embedder=embedder)
    open_ms = 1000 * (time.perf_counter() - started)
    folder = store.build_dir(Path(settings.store_path), reader.collection) / store.BM25_DIR
    started = time.perf_counter()
    Bm25Index.load(folder)
    bm25_load_ms = 1000 * (time.perf_counter() - started)
    ids = list(reader.chunks)
    started = time.perf_counter()
    Bm25Index.build(ids, [reader.chunks[c].text for c in ids])
    bm25_build_ms = 1000 * (time.perf_counter() - started)
    retriever = Retriever(settings, reader, embedder=embedder)
    times: dict[str, list[float]] = {m: [] for m in (*MODES, "encode", "bm25")}
    retriever.retrieve(questions[0], k, mode="hybrid")  # first-call costs (Chroma segment load) are not per query
    for q in questions:
        for mode in MODES:
            started = time.perf_counter()
            retriever.retrieve(q, k, mode=mode)
            times[mode].append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        embedder._encode_one(q)  # uncached: retrieve() above left this question in the query cache
        times["encode"].append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        reader.bm25(q, k)
        times["bm25"].append(1000 * (time.perf_counter() - started))
    return {
        "open_index_ms": round(open_ms, 1),
        "bm25_load_ms": round(bm25_load_ms, 1),
        "bm25_build_ms": round(bm25_build_ms, 1),
        "latency": {m: latency(v) for m, v in times.items()},
        "rss_after_model_mb": round((rss_model_kb or 0) / 1024, 1),
        "rss_mb": round((proc_status_kb("VmRSS") or 0) / 1024, 1),
        "peak_rss_mb": round((proc_status_kb("VmHWM") or 0) / 1024, 1),
    }


def _probe_in_new_process(settings: Settings, questions: list[str], k: int) -> dict:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(probe, (settings, questions, k))


def _measure(name: str, settings: Settings, questions: list[str], embedder, force: bool = True) -> dict:
    from index.build import build_index

    log(f"scale {name}: build")
    report = build_index(settings, force=force, progress=False, embedder=embedder)
    log(f"scale {name}: {report.chunks} chunks in {report.seconds:.1f} s; {len(questions)} queries in a new process")
    out = {
        "name": name,
        "chunks": report.chunks,
        "documents": report.documents,
        "embedded": report.embedded,
        "reused": report.reused,
        "build_s": round(report.seconds, 2),
        "store_mb": round(folder_bytes(Path(settings.store_path)) / 2**20, 2),
        "queries": len(questions),
    }
    return out | _probe_in_new_process(settings, questions, settings.top_k)


def run(base: Settings, sizes: list[int], queries: int = 20, seed: int = 0, incremental: bool = True) -> dict:
    from bench.squad import SQUAD_CREDIT, load_squad_train, map_questions, write_seed_files
    from index.embed import get_embedder
    from index.load import load_documents
    from index.split import split_document

    embedder = get_embedder(base)
    embedder.embed_documents(["warm-up"])
    work = Path(tempfile.mkdtemp(prefix="qa-bench-scale-"))
    rows = []
    try:
        art = isolated(base, work / "article", article_seeds(work / "article-seeds"))
        items = json.loads((Path(__file__).parent / "data" / "article_retrieval.json").read_text())["questions"]
        rows.append(_measure("article", art, [q["question"] for q in items][:queries], embedder))

        every = load_squad_train(442, seed=seed, cache_dir=Path(base.data_dir) / "cache")
        counts = [
            sum(len(split_document(d, base.chunk_size, base.chunk_overlap)) for d in load_documents(Path(folder))[0])
            for folder in [_one(work / "count", a) for a in every]
        ]
        for size in sizes:
            chosen = [every[i] for i in pick_articles(counts, size)]
            seeds = work / "seeds-squad"  # grows with the size: a larger corpus holds the smaller one's articles
            shutil.rmtree(seeds, ignore_errors=True)
            write_seed_files(chosen, seeds)  # repeated articles get new file names (numbered), so new chunk ids
            pool = [q.question for q in map_questions(chosen, seeds)]
            qs = random.Random(seed).sample(pool, min(queries, len(pool)))
            # One store for all sizes: each larger build embeds only the chunks the smaller one lacks (the index's
            # own vector reuse), which keeps the run short; build_s of such a row is an incremental build.
            rows.append(
                _measure(
                    f"{size:,}",
                    isolated(base, work / "store-squad", seeds),
                    qs,
                    embedder,
                    force=not incremental or not any(r["name"] != "article" for r in rows),
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "sizes": sizes,
        "modes": list(MODES),
        "top_k": base.top_k,
        "chunk_size": base.chunk_size,
        "credit": SQUAD_CREDIT,
        "rows": rows,
        "targets_hybrid_p50_ms": TARGETS_MS,
        "extrapolated_100k": extrapolate(rows, 100_000),
    }


def _one(folder: Path, article: dict) -> Path:
    """A folder holding just this article, for counting its chunks with the index's own loader and splitter."""
    from bench.squad import write_seed_files

    shutil.rmtree(folder, ignore_errors=True)
    write_seed_files([article], folder)
    return folder


def extrapolate(rows: list[dict], chunks: int) -> dict:
    """Linear in chunk count through the two largest measured sizes (BM25 scoring and the build are linear; HNSW
    search grows slower, so dense is an upper bound). Labelled as an estimate wherever it is shown."""
    big = sorted((r for r in rows if r["name"] != "article"), key=lambda r: r["chunks"])[-2:]
    if len(big) < 2 or big[1]["chunks"] == big[0]["chunks"]:
        return {}
    a, b = big
    f = (chunks - a["chunks"]) / (b["chunks"] - a["chunks"])

    def line(x, y):
        return round(x + (y - x) * f, 1)

    return {
        "chunks": chunks,
        "estimate": True,
        **{f"{m}_p50_ms": line(a["latency"][m]["p50_ms"], b["latency"][m]["p50_ms"]) for m in (*MODES, "bm25")},
        "build_s": _full_build_estimate(rows, chunks),
        "store_mb": line(a["store_mb"], b["store_mb"]),
        "rss_mb": line(a["rss_mb"], b["rss_mb"]),
    }


def _full_build_estimate(rows: list[dict], chunks: int) -> float | None:
    """Seconds for a from-scratch build of `chunks`, at the rate of the largest measured full build (embedding
    dominates and is linear in chunks)."""
    full = [r for r in rows if r["name"] != "article" and not r.get("reused")]
    if not full:
        return None
    r = max(full, key=lambda r: r["chunks"])
    return round(r["build_s"] * chunks / r["chunks"], 1)


def render(result: dict, console) -> None:
    table = columns_table(
        (
            "corpus | chunks | embedded | build s | store MB | open ms | "
            "BM25 load/build ms | hybrid p50/p95 | dense p50/p95 | bm25 p50 | encode p50 | "
            "RSS MB | peak MB"
        ),
        left=("corpus",),
        title=f"Retrieval latency vs corpus size (top_k={result['top_k']}, query encoding included)",
    )
    for r in result["rows"]:
        lat = r["latency"]
        table.add_row(
            r["name"],
            str(r["chunks"]),
            str(r.get("embedded", "")),
            f"{r['build_s']:.1f}",
            f"{r['store_mb']:.1f}",
            f"{r['open_index_ms']:.0f}",
            f"{r['bm25_load_ms']:.0f}/{r['bm25_build_ms']:.0f}",
            f"{lat['hybrid']['p50_ms']:.1f}/{lat['hybrid']['p95_ms']:.1f}",
            f"{lat['dense']['p50_ms']:.1f}/{lat['dense']['p95_ms']:.1f}",
            f"{lat['bm25']['p50_ms']:.1f}",
            f"{lat['encode']['p50_ms']:.1f}",
            f"{r['rss_mb']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    console.print(table)
    if result.get("extrapolated_100k"):
        console.print(f"Estimate at 100k chunks (linear, not measured): {result['extrapolated_100k']}")


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for
    from bench.__main__ import _ints

    def add_args(p):
        p.add_argument("--sizes", type=_ints, default=[1000, 10000], help="target chunk counts")
        p.add_argument("--queries", type=int, default=20, help="questions per size (seeded SQuAD sample)")
        p.add_argument(
            "--full-builds",
            action="store_true",
            help="build every size from scratch (default: larger sizes reuse the smaller one's vectors)",
        )
        p.add_argument("--seed", type=int, default=0)

    return main_for(
        "scale",
        __doc__,
        add_args,
        lambda s, a: run(s, a.sizes, max(1, a.queries), a.seed, not a.full_builds),
        render,
        argv,
    )


__all__ = ["MODES", "extrapolate", "main", "pick_articles", "probe", "render", "run"]


def search_only(sizes: list[int], queries: int = 50, seed: int = 0, dim: int = 384) -> list[dict]:
    """Search cost alone, without the query encoder: Chroma (HNSW, cosine, as the index creates it) over `n` random
    unit vectors, and the index's BM25 over `n` SQuAD train paragraphs (cycled when n exceeds them), queried with
    SQuAD questions. Synthetic vectors: an HNSW graph of random points is searched at least as hard as real ones."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    from bench.squad import load_squad_train
    from index.bm25 import Bm25Index

    arts = load_squad_train(442, seed=seed, cache_dir=Path(".qa") / "cache")
    paragraphs = [p["context"] for a in arts for p in a["paragraphs"]]
    questions = [q["question"] for a in arts for p in a["paragraphs"] for q in p["qas"]]
    rng = np.random.default_rng(seed)
    qs = [questions[i] for i in rng.choice(len(questions), queries, replace=False)]
    out = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="qa-bench-search-"))
        try:
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            client = chromadb.PersistentClient(path=str(work), settings=ChromaSettings(anonymized_telemetry=False))
            col = client.create_collection(
                "search-only", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
            step = client.get_max_batch_size()
            started = time.perf_counter()
            for i in range(0, n, step):
                col.add(ids=[str(j) for j in range(i, min(n, i + step))], embeddings=vectors[i : i + step])
            insert_s = time.perf_counter() - started
            texts = [paragraphs[i % len(paragraphs)] for i in range(n)]
            started = time.perf_counter()
            bm25 = Bm25Index.build([str(i) for i in range(n)], texts)
            bm25_build_s = time.perf_counter() - started
            bm25.save(work / "bm25")
            started = time.perf_counter()
            bm25 = Bm25Index.load(work / "bm25")
            bm25_load_s = time.perf_counter() - started
            qv = rng.standard_normal((queries, dim)).astype(np.float32)
            qv /= np.linalg.norm(qv, axis=1, keepdims=True)
            col.query(query_embeddings=[qv[0]], n_results=20)  # loads the segment
            dense, lexical = [], []
            for v, q in zip(qv, qs):
                started = time.perf_counter()
                col.query(query_embeddings=[v], n_results=20, include=["distances"])
                dense.append(1000 * (time.perf_counter() - started))
                started = time.perf_counter()
                bm25.search(q, 20)
                lexical.append(1000 * (time.perf_counter() - started))
            out.append(
                {
                    "chunks": n,
                    "chroma_insert_s": round(insert_s, 1),
                    "bm25_build_s": round(bm25_build_s, 2),
                    "bm25_load_s": round(bm25_load_s, 3),
                    "dense_search": latency(dense),
                    "bm25_search": latency(lexical),
                    "hybrid_search_p50_ms": round(pct([d + b for d, b in zip(dense, lexical)], 50), 2),
                }
            )
            log(f"search-only {n}: {out[-1]}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out
