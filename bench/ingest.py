"""Ingest: chunks/s of a full `build_index` (chunks encoded by ONNX Runtime when `QA_EMBED_ONNX` is on, the
default) against (a) raw torch `SentenceTransformer.encode()` of the same chunk texts with `QA_EMBED_BATCH_SIZE`
(the torch path's limit) and (b) the LangChain tutorial pipeline
(`RecursiveCharacterTextSplitter(1000, 200)` + `HuggingFaceEmbeddings` with its defaults on the same model files +
`Chroma.from_documents`) on the same corpus.

    python -m bench ingest [--json] [--articles 20] [--rounds 2]

Corpus: SQuAD v1.1 train articles (Rajpurkar et al., 2016, CC BY-SA 4.0). The three pipelines run interleaved
round by round in one process, each full build in a fresh store, so load from other users of the shared machine
hits all of them alike; the best round of each is compared. Our build and the raw encoder embed the same chunks;
the tutorial cuts the corpus into half as many, twice as long chunks, so it is also compared per corpus
(seconds for the same documents), which is what a person waits for. The no-change rebuild and the
nothing-to-do build come from `bench.retrieval._ingest` (reused, not re-implemented).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import columns_table, folder_bytes, isolated, log
from index.settings import Settings

TARGETS = {"build_vs_encoder": 0.9, "build_vs_tutorial_corpus": 1.5, "rebuild_vs_full": 0.05}


def tutorial_embedder(base: Settings):
    """The tutorial's embeddings: `HuggingFaceEmbeddings` on the same model files, with its default settings."""
    from langchain_huggingface import HuggingFaceEmbeddings

    from index.embed import model_location

    return HuggingFaceEmbeddings(model_name=model_location(base.embedding_model), model_kwargs={"device": "cpu"})


def tutorial_ingest(seeds: Path, persist: Path, embedder) -> dict:
    """The LangChain RAG tutorial's indexing: load, RecursiveCharacterTextSplitter(1000, 200), Chroma.from_documents."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    docs = [
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.name})
        for p in sorted(seeds.glob("*.txt"))
    ]
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    client = chromadb.PersistentClient(path=str(persist), settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma.from_documents(splits, embedding=embedder, client=client, collection_name="tutorial")
    seconds = time.perf_counter() - started
    count = store._collection.count()
    if count != len(splits):
        raise RuntimeError(f"the tutorial store holds {count} chunks, expected {len(splits)}")
    return {
        "seconds": seconds,
        "chunks": len(splits),
        "chars": sum(len(s.page_content) for s in splits),
        "store_bytes": folder_bytes(persist),
    }


def compare(ours: dict, tutorial: dict) -> dict:
    """Ratios from the best timings: >1 means our build is faster."""
    return {
        "build_vs_encoder": ours["build_chunks_per_s"] / ours["encoder_chunks_per_s"],
        "build_vs_tutorial_chunks": ours["build_chunks_per_s"] / (tutorial["chunks"] / tutorial["seconds"]),
        "build_vs_tutorial_corpus": tutorial["seconds"] / ours["full_build_s"],
        "rebuild_vs_full": ours["nochange_rebuild_s"] / ours["full_build_s"],
    }


def verdicts(ratios: dict) -> dict:
    """met / not met per target (rebuild is a ceiling, the others are floors)."""
    return {k: (ratios[k] <= t if k == "rebuild_vs_full" else ratios[k] >= t) for k, t in TARGETS.items()}


def run(base: Settings, articles: int = 20, rounds: int = 2, seed: int = 0) -> dict:
    from bench.retrieval import _ingest
    from bench.squad import SQUAD_CREDIT, load_squad_train, write_seed_files
    from index.embed import get_embedder

    embedder = get_embedder(base)
    theirs = tutorial_embedder(base)
    for e in (embedder, theirs):
        e.embed_documents(["warm-up: load the weights before anything is timed"])
    import chromadb  # noqa: F401  imported before anything is timed: neither side's first round pays for it
    import langchain_chroma  # noqa: F401

    picked = load_squad_train(articles, seed=seed, cache_dir=Path(base.data_dir) / "cache")
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ingest-"))
    ours, tutorial = [], []
    try:
        seeds = work / "seeds"
        write_seed_files(picked, seeds)
        corpus_chars = sum(len(p.read_text(encoding="utf-8")) for p in seeds.glob("*.txt"))
        for r in range(rounds):
            log(f"ingest round {r + 1}/{rounds}: raw encoder, full build, no-change rebuild, tutorial")
            got = _ingest(isolated(base, work / f"ours-{r}", seeds), embedder, repeat=1)
            got.pop("settings")
            ours.append(got)
            tutorial.append(tutorial_ingest(seeds, work / f"tutorial-{r}", theirs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = dict(ours[0])
    for key in ("full_build_s", "nochange_rebuild_s", "up_to_date_check_s"):
        best[key] = min(o[key] for o in ours)
    best["encoder_chunks_per_s"] = max(o["encoder_chunks_per_s"] for o in ours)
    best["build_chunks_per_s"] = best["chunks"] / best["full_build_s"]
    best_tut = min(tutorial, key=lambda t: t["seconds"])
    ratios = compare(best, best_tut)
    return {
        "articles": articles,
        "rounds": rounds,
        "corpus_chars": corpus_chars,
        "credit": SQUAD_CREDIT,
        "embed_batch_size": base.embed_batch_size,
        "chunk_size": base.chunk_size,
        "chunk_overlap": base.chunk_overlap,
        "ours": best,
        "tutorial": best_tut,
        "rounds_raw": {"ours": ours, "tutorial": tutorial},
        "ratios": ratios,
        "targets": TARGETS,
        "met": verdicts(ratios),
    }


def render(result: dict, console) -> None:
    o, t, r = result["ours"], result["tutorial"], result["ratios"]
    table = columns_table(
        "pipeline | chunks | seconds | chunks/s",
        left=("pipeline",),
        title=f"Ingest of {result['articles']} SQuAD train articles ({result['corpus_chars']:,} chars), "
        f"best of {result['rounds']} interleaved rounds",
    )
    table.add_row(
        "raw torch encode()",
        str(o["chunks"]),
        f"{o['chunks'] / o['encoder_chunks_per_s']:.1f}",
        f"{o['encoder_chunks_per_s']:.1f}",
    )
    table.add_row("build_index (full)", str(o["chunks"]), f"{o['full_build_s']:.1f}", f"{o['build_chunks_per_s']:.1f}")
    table.add_row("build_index (no change)", str(o["chunks"]), f"{o['nochange_rebuild_s']:.2f}", "")
    table.add_row(
        "tutorial (1000/200 + Chroma.from_documents)",
        str(t["chunks"]),
        f"{t['seconds']:.1f}",
        f"{t['chunks'] / t['seconds']:.1f}",
    )
    console.print(table)
    for key, target in result["targets"].items():
        sign = "<=" if key == "rebuild_vs_full" else ">="
        console.print(f"{key}: {r[key]:.3f} (target {sign} {target}) {'met' if result['met'][key] else 'NOT met'}")
    console.print(f"build_vs_tutorial_chunks: {r['build_vs_tutorial_chunks']:.2f}")


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--articles", type=int, default=20, help="SQuAD v1.1 train articles in the corpus")
        p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each is compared")
        p.add_argument("--seed", type=int, default=0)

    return main_for(
        "ingest", __doc__, add_args, lambda s, a: run(s, a.articles, max(1, a.rounds), a.seed), render, argv
    )


__all__ = ["TARGETS", "compare", "main", "run", "render", "tutorial_ingest", "verdicts"]
