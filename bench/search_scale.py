"""Search latency as the index grows to 1M chunks, query encoding excluded.

    python -m bench search-scale [--json] [--sizes 10000,100000] [--bm25-sizes 100000,1000000] [--queries 200]
    python -m bench search-scale-server [...]   the same through a Chroma server

Per size, in a fresh process: the SQuAD v1.1 train articles are chunked with the index's own loader and splitter
(about 40k chunks; larger sizes reuse the chunk texts under new ids and sources), written to Chroma the way
`index.build` writes them (same collection configuration, metadata, batch size), and the index's
`Bm25Index` is built over the same texts and saved. The dense side is synthetic: random unit vectors in 384
dimensions (an HNSW graph over random points is searched at least as hard as one over real chunks). Then the
index's own `IndexReader` and `qa.retrieve.Retriever` search it with SQuAD questions whose vectors were encoded
beforehand with the real model (the only part bypassed is the query encoder): `hybrid` per query (dense + BM25 +
fusion + sentence re-ranking, as served), and its `dense` (Chroma query) and `bm25` parts, interleaved.
Reported: build seconds (Chroma write, BM25 build), size on disk (Chroma, BM25), RSS, latency p50/p95.

`search-scale-server` writes and searches through a Chroma server (`chroma run`, started here on a free port) instead of
the embedded PersistentClient. Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import columns_table, folder_bytes, latency, log, proc_status_kb
from index.settings import Settings

TARGET_1M_HYBRID_P50_MS = 100.0
PARTS = ("hybrid", "dense", "bm25")


class Precomputed:
    """An embedder that answers `embed_query` from vectors encoded beforehand (query encoding is excluded)."""

    def __init__(self, vectors: dict[str, list[float]]):
        self._vectors = vectors

    def embed_query(self, text: str) -> list[float]:
        return self._vectors[text]


def squad_chunks(settings: Settings, work: Path) -> list:
    """The SQuAD train articles as the index chunks them (loader + splitter)."""
    from bench.squad import load_squad_train, write_seed_files
    from index.build import distinct_chunks
    from index.load import load_documents
    from index.split import split_document

    arts = load_squad_train(442, seed=0, cache_dir=Path(settings.data_dir) / "cache")
    seeds = work / "seeds"
    write_seed_files(arts, seeds)
    docs, _ = load_documents(seeds)
    chunks = [c for d in docs for c in split_document(d, settings.chunk_size, settings.chunk_overlap)]
    return distinct_chunks(chunks)


def questions(settings: Settings, n: int, seed: int = 0) -> list[str]:
    import random

    from bench.squad import load_squad_train

    arts = load_squad_train(442, seed=0, cache_dir=Path(settings.data_dir) / "cache")
    pool = [q["question"].strip() for a in arts for p in a["paragraphs"] for q in p["qas"] if q["question"].strip()]
    return random.Random(seed).sample(pool, n)


def encode_questions(settings: Settings, qs: list[str]) -> dict[str, list[float]]:
    from index.embed import get_embedder

    embedder = get_embedder(settings)
    return {q: list(v) for q, v in zip(qs, embedder.embed_documents(qs))}


def _start_server(folder: Path) -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(folder), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the Chroma server did not start")


def measure(
    size: int, settings: Settings, vectors: dict[str, list[float]], seed: int = 0, server: bool = False
) -> dict:
    """One size, in this process: write, build, open through IndexReader, search through Retriever."""
    import numpy as np

    from index import store
    from index.bm25 import Bm25Index
    from index.reader import IndexReader
    from index.types import Chunk
    from qa.retrieve import Retriever

    work = Path(tempfile.mkdtemp(prefix="qa-bench-search-scale-"))
    proc = None
    try:
        base = squad_chunks(settings, work)
        s = settings.model_copy(update={"data_dir": work / "data", "store_dir": work / "store", "chroma_host": None})
        if server:
            proc, port = _start_server(work / "server")
            s = s.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": port})
        chunks: dict[str, Chunk] = {}
        for i in range(size):
            c = base[i % len(base)]
            copy = i // len(base)
            cid = c.id if copy == 0 else f"{c.id}-{copy}"
            chunks[cid] = Chunk(
                cid, c.source if copy == 0 else f"{c.source}#{copy}", c.title, c.start, c.end, c.text, c.page
            )
        ids = list(chunks)
        rng = np.random.default_rng(seed)
        client = store.chroma_client(s)
        name = store.new_collection_name()
        folder = store.build_dir(Path(s.store_path), name)
        folder.mkdir(parents=True)
        collection = client.create_collection(
            name,
            metadata={**store.index_config(s), "built_at": store.now_iso()},
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        step = client.get_max_batch_size()
        log(f"search-scale {size:,}: writing {size:,} chunks to Chroma in batches of {step}")
        started = time.perf_counter()
        for i in range(0, size, step):
            batch = [chunks[c] for c in ids[i : i + step]]
            vecs = rng.standard_normal((len(batch), s.embedding_dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            collection.add(
                ids=[c.id for c in batch],
                embeddings=vecs,
                metadatas=[{"source": c.source, "title": c.title, "start": c.start, "end": c.end} for c in batch],
            )
            if (i // step) % 20 == 0:
                log(f"search-scale {size:,}: {i + len(batch):,} written, {time.perf_counter() - started:.0f} s")
        chroma_s = time.perf_counter() - started
        log(f"search-scale {size:,}: Chroma written in {chroma_s:.0f} s; BM25")
        started = time.perf_counter()
        Bm25Index.build(ids, [chunks[c].text for c in ids]).save(folder / store.BM25_DIR)
        bm25_s = time.perf_counter() - started
        store.switch_pointer(s, name)
        started = time.perf_counter()
        bm25 = Bm25Index.load(folder / store.BM25_DIR)
        collection = client.get_collection(name, embedding_function=None)
        reader = IndexReader(s, name, {}, {}, chunks, bm25, collection, embedder=Precomputed(vectors))
        retriever = Retriever(s, reader)
        qs = list(vectors)
        retriever.retrieve(qs[0], s.top_k, mode="hybrid")  # the first query loads the HNSW segment
        open_s = time.perf_counter() - started
        times: dict[str, list[float]] = {p: [] for p in PARTS}
        depth = 20  # qa.retrieve.FUSION_DEPTH: what hybrid asks each side for
        for q in qs:
            started = time.perf_counter()
            retriever.retrieve(q, s.top_k, mode="hybrid")
            times["hybrid"].append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            reader.dense(q, depth)
            times["dense"].append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            reader.bm25(q, depth)
            times["bm25"].append(1000 * (time.perf_counter() - started))
        chroma_dir = work / "server" if server else Path(s.store_path) / "chroma"
        return {
            "chunks": size,
            "server": server,
            "distinct_texts": len(base),
            "queries": len(qs),
            "chroma_write_s": round(chroma_s, 1),
            "bm25_build_s": round(bm25_s, 1),
            "open_s": round(open_s, 2),
            "chroma_mb": round(folder_bytes(chroma_dir) / 2**20, 1),
            "bm25_mb": round(folder_bytes(folder / store.BM25_DIR) / 2**20, 1),
            "latency": {p: latency(v) for p, v in times.items()},
            "rss_mb": round((proc_status_kb("VmRSS") or 0) / 2**10),
            "peak_rss_mb": round((proc_status_kb("VmHWM") or 0) / 2**10),
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _sorted_search(index, query: str, k: int) -> list[tuple[str, float]]:
    """Bm25Index.search as it was before index.bm25.top_k: a stable argsort of every row's score."""
    import numpy as np

    from index.bm25 import tokenize

    token_ids = index._model.get_tokens_ids(tokenize(query))
    if not token_ids:
        return []
    scores = index._model.get_scores_from_ids(token_ids)
    return [(index.ids[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]


def measure_bm25(sizes: list[int], settings: Settings, qs: list[str]) -> list[dict]:
    """The BM25 side alone, up to sizes Chroma cannot be filled to in time: the index's Bm25Index over `n` real chunk
    texts (each distinct text tokenized once, its tokens reused for its copies: the same model
    `Bm25Index.build` makes), searched at depth 20 with top-k selection (now) and a full sort (before), interleaved."""
    import bm25s

    from index.bm25 import Bm25Index, tokenize

    work = Path(tempfile.mkdtemp(prefix="qa-bench-bm25-scale-"))
    try:
        base = squad_chunks(settings, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tokens = [tokenize(c.text) or [""] for c in base]
    rows = []
    for n in sizes:
        started = time.perf_counter()
        model = bm25s.BM25()
        model.index([tokens[i % len(tokens)] for i in range(n)], show_progress=False)
        index = Bm25Index(model, [f"c{i}" for i in range(n)])
        build_s = time.perf_counter() - started
        times: dict[str, list[float]] = {"top_k": [], "sort": []}
        for j, q in enumerate(qs):
            for name in ("top_k", "sort") if j % 2 else ("sort", "top_k"):
                started = time.perf_counter()
                hits = index.search(q, 20) if name == "top_k" else _sorted_search(index, q, 20)
                times[name].append(1000 * (time.perf_counter() - started))
            if j < 20:
                assert hits == (_sorted_search(index, q, 20) if name == "top_k" else index.search(q, 20))
        rows.append(
            {
                "chunks": n,
                "build_s": round(build_s, 1),
                "search": {m: latency(v) for m, v in times.items()},
                "rss_mb": round((proc_status_kb("VmRSS") or 0) / 2**10),
            }
        )
        log(f"search-scale bm25: {json.dumps(rows[-1])}")
        del model, index
    return rows


def run(
    base: Settings,
    sizes: list[int],
    queries: int = 200,
    seed: int = 0,
    server: bool = False,
    bm25_sizes: list[int] | None = None,
) -> dict:
    import multiprocessing

    qs = questions(base, queries, seed)
    log(f"search-scale: encoding {len(qs)} questions first (not timed)")
    vectors = encode_questions(base, qs)
    rows, bm25_rows = [], []
    for size in sizes:
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # each size's memory is its own
            rows.append(pool.apply(measure, (size, base, vectors, seed, server)))
        log(f"search-scale: {json.dumps(rows[-1])}")
    if bm25_sizes:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            bm25_rows = pool.apply(measure_bm25, (bm25_sizes, base, qs))
    return {
        "sizes": sizes,
        "server": server,
        "top_k": base.top_k,
        "dense": "random unit vectors",
        "target_1m_hybrid_p50_ms": TARGET_1M_HYBRID_P50_MS,
        "rows": rows,
        "bm25_rows": bm25_rows,
    }


def estimate(result: dict, chunks: int = 1_000_000) -> dict:
    """Hybrid p50 at `chunks` from measured parts, for when Chroma could not be filled that far: the largest
    full-path hybrid p50, plus BM25's measured growth to `chunks` (BM25 alone), plus the dense part's growth,
    extrapolated two ways: logarithmic in size (how HNSW search grows) and linear (an upper bound)."""
    import math

    rows = sorted(result["rows"], key=lambda r: r["chunks"])[-2:]
    bm = {r["chunks"]: r["search"]["top_k"]["p50_ms"] for r in result.get("bm25_rows") or []}
    if len(rows) < 2 or chunks not in bm or rows[1]["chunks"] not in bm or any(r["chunks"] >= chunks for r in rows):
        return {}
    a, b = rows
    d_a, d_b = a["latency"]["dense"]["p50_ms"], b["latency"]["dense"]["p50_ms"]
    dense_log = d_b + (d_b - d_a) * math.log(chunks / b["chunks"]) / math.log(b["chunks"] / a["chunks"])
    dense_linear = d_b * chunks / b["chunks"]
    base = b["latency"]["hybrid"]["p50_ms"] + bm[chunks] - bm[b["chunks"]]
    return {
        "chunks": chunks,
        "estimate": True,
        "from_chunks": b["chunks"],
        "bm25_p50_ms": bm[chunks],
        "dense_p50_ms_log": round(dense_log, 1),
        "dense_p50_ms_linear": round(dense_linear, 1),
        "hybrid_p50_ms_log": round(base + dense_log - d_b, 1),
        "hybrid_p50_ms_linear": round(base + dense_linear - d_b, 1),
    }


def render(result: dict, console) -> None:
    where = "Chroma server" if result["server"] else "embedded Chroma"
    table = columns_table(
        (
            "chunks | Chroma write s | BM25 build s | Chroma MB | BM25 MB | "
            "hybrid p50/p95 ms | dense p50/p95 ms | bm25 p50/p95 ms | peak RSS MB"
        ),
        title=f"Search latency without query encoding ({where}, top_k={result['top_k']})",
    )
    for r in result["rows"]:
        lat = r["latency"]
        table.add_row(
            f"{r['chunks']:,}",
            f"{r['chroma_write_s']:.0f}",
            f"{r['bm25_build_s']:.0f}",
            f"{r['chroma_mb']:.0f}",
            f"{r['bm25_mb']:.0f}",
            *(f"{lat[p]['p50_ms']:.1f}/{lat[p]['p95_ms']:.1f}" for p in PARTS),
            f"{r['peak_rss_mb']}",
        )
    console.print(table)
    if result.get("bm25_rows"):
        table = columns_table(
            "chunks | build s | top-k p50/p95 ms | full sort p50/p95 ms | RSS MB",
            title="BM25 alone (Bm25Index.search, depth 20): top-k selection against a full sort",
        )
        for r in result["bm25_rows"]:
            a, b = r["search"]["top_k"], r["search"]["sort"]
            table.add_row(
                f"{r['chunks']:,}",
                f"{r['build_s']:.0f}",
                f"{a['p50_ms']:.1f}/{a['p95_ms']:.1f}",
                f"{b['p50_ms']:.1f}/{b['p95_ms']:.1f}",
                f"{r['rss_mb']}",
            )
        console.print(table)
    est = estimate(result)
    if est:
        console.print(
            f"Estimate at {est['chunks']:,} chunks (not measured end to end): hybrid p50 "
            f"{est['hybrid_p50_ms_log']} ms with dense growing logarithmically, {est['hybrid_p50_ms_linear']} "
            f"ms if it grew linearly; BM25 measured at {est['bm25_p50_ms']} ms"
        )


def main(argv: list[str] | None = None, server: bool = False) -> int:
    from bench.__main__ import _ints
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--sizes", type=_ints, default=[10_000, 100_000], help="chunk counts (full path)")
        p.add_argument("--queries", type=int, default=200, help="SQuAD questions per size (seeded sample)")
        p.add_argument(
            "--bm25-sizes",
            type=_ints,
            default=None,
            help="also the BM25 side alone at these chunk counts (e.g. 100000,1000000)",
        )
        p.add_argument("--seed", type=int, default=0)

    return main_for(
        "search-scale-server" if server else "search-scale",
        __doc__,
        add_args,
        lambda s, a: run(s, a.sizes, max(1, a.queries), a.seed, server, a.bm25_sizes),
        render,
        argv,
    )


def server_main(argv: list[str] | None = None) -> int:
    return main(argv, server=True)


__all__ = ["Precomputed", "estimate", "main", "measure", "render", "run", "server_main"]
