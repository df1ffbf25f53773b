"""Retrieval benchmark: quality of dense, BM25 and hybrid search, ingest speed, rebuild cost, chunk-size sweep.

Everything runs on the real index package (real Chroma in temp folders, the real embedding model), so the
numbers describe what `qa index build` and `qa search` actually do. Two question sets:
  (a) the seed article with bench/data/article_retrieval.json: a hit is a passage containing the exact support text;
  (b) SQuAD v1.1 train articles (Rajpurkar et al., 2016, CC BY-SA 4.0): a hit is a passage of the right document
      whose [start, end) holds the answer's first character.
The default chunk size is chosen here: the smallest size whose hybrid quality is within a small margin of the best,
because smaller passages keep the answer prompt short.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.common import columns_table, isolated
from bench.squad import SQUAD_CREDIT, load_squad_train, map_questions, write_seed_files
from index.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt"
ARTICLE_QUESTIONS = ROOT / "bench" / "data" / "article_retrieval.json"
RESULTS = ROOT / "bench" / "results"
MODES = ("dense", "bm25", "hybrid")
DEPTH = 10  # passages retrieved per query; MRR is MRR@10
MARGIN = 0.01  # a chunk size "ties" the best when its quality is within this much


@dataclass(frozen=True)
class Target:
    """Where the evidence is: a passage hits when it is from `source` and spans [start, end)."""

    question: str
    source: str
    start: int
    end: int


class QueryCache:
    """The embedder with remembered query vectors: each question is encoded once for all modes and chunk sizes.

    The time spent encoding is kept, so per-query latency can still be reported honestly (search + encode).
    """

    def __init__(self, embedder):
        self._embedder = embedder
        self._vectors: dict[str, list[float]] = {}
        self.encode_seconds = 0.0

    def embed_query(self, text: str) -> list[float]:
        if text not in self._vectors:
            started = time.perf_counter()
            self._vectors[text] = self._embedder.embed_query(text)
            self.encode_seconds += time.perf_counter() - started
        return self._vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_documents(texts)

    def prime(self, texts: list[str]) -> None:
        """Encode the questions up front, one by one as users ask them, so search timings exclude encoding."""
        for text in texts:
            self.embed_query(text)

    @property
    def encode_ms_per_query(self) -> float:
        return 1000 * self.encode_seconds / max(1, len(self._vectors))


def metrics(ranks: list[int | None], budget_k: int = 5) -> dict:
    """hit@1, hit@5, MRR@DEPTH and hit@budget (a hit among the first budget_k passages) from the 1-based rank of
    the first hit per question (None: no hit)."""
    n = len(ranks) or 1
    return {
        "hit@1": sum(r == 1 for r in ranks if r) / n,
        "hit@5": sum(r <= 5 for r in ranks if r) / n,
        "mrr": sum(1.0 / r for r in ranks if r) / n,
        "hit@budget": sum(r <= budget_k for r in ranks if r) / n,
    }


def first_hit(passages, target: Target) -> int | None:
    for rank, p in enumerate(passages, 1):
        if p.source == target.source and p.start <= target.start and target.end <= p.end:
            return rank
    return None


def article_targets(text: str, source: str) -> list[Target]:
    """The article questions, located in the cleaned document text the index stores."""
    items = json.loads(ARTICLE_QUESTIONS.read_text(encoding="utf-8"))["questions"]
    targets = []
    for item in items:
        at = text.find(item["support"])
        if at < 0:
            raise ValueError(f"support of {item['id']} is not in the cleaned article")
        targets.append(Target(item["question"], source, at, at + len(item["support"])))
    return targets


def squad_targets(articles: list[dict], folder: Path, limit: int, seed: int) -> list[Target]:
    """SQuAD questions with their answer offsets; a seeded sample of `limit` of them (0: all)."""
    targets = [Target(q.question, q.source, q.offset, q.offset + 1) for q in map_questions(articles, folder)]
    if 0 < limit < len(targets):
        targets = [targets[i] for i in sorted(random.Random(seed).sample(range(len(targets)), limit))]
    return targets


def evaluate(retriever, targets: list[Target], budget_k: int) -> dict:
    """Metrics, search time per query (query vectors come from the QueryCache) and the ranks, for each mode."""
    out = {}
    for mode in MODES:
        ranks, started = [], time.perf_counter()
        for t in targets:
            ranks.append(first_hit(retriever.retrieve(t.question, max(DEPTH, budget_k), mode=mode), t))
        out[mode] = {
            **metrics(ranks, budget_k),
            "search_ms": 1000 * (time.perf_counter() - started) / max(1, len(targets)),
            "ranks": ranks,
        }
    return out


def reachable(reader, targets: list[Target]) -> float:
    """Share of targets that some chunk contains whole: the ceiling of every mode at this chunk size."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for c in reader.chunks.values():
        spans.setdefault(c.source, []).append((c.start, c.end))
    held = sum(any(s <= t.start and t.end <= e for s, e in spans.get(t.source, [])) for t in targets)
    return held / max(1, len(targets))


def _settings(base: Settings, root: Path, seeds: Path, chunk_size: int, chunk_overlap: int) -> Settings:
    """Isolated: its own seeds, store and embedded Chroma, whatever the caller's store or server settings say."""
    return isolated(base, root, seeds, chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def _chunk_texts(settings: Settings) -> list[str]:
    """The texts a build of these settings embeds, from the index's own loader and splitter."""
    from index.load import load_documents
    from index.split import split_document

    docs, _ = load_documents(settings.seeds_dir)
    return [c.text for d in docs for c in split_document(d, settings.chunk_size, settings.chunk_overlap)]


def _ingest(settings: Settings, embedder, repeat: int) -> dict:
    """Full builds, no-change rebuilds and the raw encoder on the same chunk texts, interleaved, best of `repeat`.

    The raw encoder is the SentenceTransformer inside langchain's HuggingFaceEmbeddings (same weights), called with
    the same batch size. Interleaving and best-of keep other load on a shared machine from skewing the ratios.
    """
    from index.build import build_index

    texts = _chunk_texts(settings)
    encoder = embedder._client
    full_s, rebuild_s, encode_s = [], [], []
    for i in range(repeat):
        run = settings.model_copy(update={"store_dir": Path(settings.data_dir) / f"store-{i}"})
        started = time.perf_counter()
        encoder.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True, show_progress_bar=False)
        encode_s.append(time.perf_counter() - started)
        full = build_index(run, force=True, progress=False, embedder=embedder)
        again = build_index(run, force=True, progress=False, embedder=embedder)
        if full.chunks != len(texts) or again.embedded != 0:
            raise RuntimeError(
                f"unexpected build: {full.chunks} chunks for {len(texts)} texts, "
                f"{again.embedded} re-embedded on a no-change rebuild"
            )
        full_s.append(full.seconds)
        rebuild_s.append(again.seconds)
    noop = build_index(run, force=False, progress=False, embedder=embedder)
    build_rate, encode_rate = len(texts) / min(full_s), len(texts) / min(encode_s)
    return {
        "settings": run,
        "chunks": len(texts),
        "mean_chunk_chars": statistics.fmean(len(t) for t in texts),
        "repeat": repeat,
        "full_build_s": min(full_s),
        "build_chunks_per_s": build_rate,
        "encoder_chunks_per_s": encode_rate,
        "build_vs_encoder": build_rate / encode_rate,
        "nochange_rebuild_s": min(rebuild_s),
        "rebuild_vs_full": min(rebuild_s) / min(full_s),
        "up_to_date_check_s": noop.seconds,
        "up_to_date": noop.up_to_date,
    }


def recommend(sweep: list[dict]) -> dict:
    """The chunk size whose hybrid search best puts the evidence first and within the prompt budget.

    Quality = mean over the article and SQuAD of (hit@1 + hit@budget) / 2. hit@1 is what citations and the
    extractive answer lean on (and the issue's bar); hit@budget (a hit within the first context_chars // chunk_size
    passages) compares sizes at equal prompt length, since a larger chunk trivially holds more answers. Sizes within
    MARGIN of the best tie; the smallest wins (finer citations, more passages for the same prompt length).
    """

    def quality(row: dict) -> float:
        return (
            sum(row[name]["hybrid"]["hit@1"] + row[name]["hybrid"]["hit@budget"] for name in ("article", "squad")) / 4
        )

    best = max(quality(r) for r in sweep)
    pick = min((r for r in sweep if quality(r) >= best - MARGIN), key=lambda r: (r["chunk_size"], r["chunk_overlap"]))
    return {
        "chunk_size": pick["chunk_size"],
        "chunk_overlap": pick["chunk_overlap"],
        "top_k": pick["budget_k"],
        "quality": quality(pick),
        "best_quality": best,
        "rule": f"smallest chunk size within {MARGIN} of the best hybrid mean(hit@1, hit@budget) "
        "over article and SQuAD",
    }


def _measure(
    base: Settings,
    work: Path,
    size: int,
    overlap: int,
    seeds: tuple[Path, Path],
    squad_set: list[Target],
    embedder,
    queries: QueryCache,
    repeat: int,
    context_chars: int,
    log,
) -> dict:
    """One point of the sweep: article quality, SQuAD ingest timings, SQuAD quality."""
    from index.build import build_index
    from index.reader import open_index
    from qa.retrieve import Retriever

    article_seeds, squad_seeds = seeds
    budget_k = max(1, context_chars // size)
    log(f"chunk_size={size} chunk_overlap={overlap}: article index and questions")
    art = _settings(base, work / f"article-{size}-{overlap}", article_seeds, size, overlap)
    build_index(art, force=True, progress=False, embedder=embedder)
    reader = open_index(art, embedder=queries)
    source = next(iter(reader.chunks.values())).source
    targets = article_targets(reader.document_text(source), source)
    queries.prime([t.question for t in targets])
    article = {
        **evaluate(Retriever(art, reader), targets, budget_k),
        "reachable": reachable(reader, targets),
        "chunks": len(reader.chunks),
        "questions": len(targets),
    }

    log(
        f"chunk_size={size} chunk_overlap={overlap}: SQuAD builds and encoder timing (x{repeat}), "
        f"{len(squad_set)} questions"
    )
    ingest = _ingest(_settings(base, work / f"squad-{size}-{overlap}", squad_seeds, size, overlap), embedder, repeat)
    squad_settings = ingest.pop("settings")
    reader = open_index(squad_settings, embedder=queries)
    queries.prime([t.question for t in squad_set])
    squad = {
        **evaluate(Retriever(squad_settings, reader), squad_set, budget_k),
        "reachable": reachable(reader, squad_set),
        "chunks": len(reader.chunks),
        "questions": len(squad_set),
    }
    return {
        "chunk_size": size,
        "chunk_overlap": overlap,
        "budget_k": budget_k,
        "article": article,
        "squad": squad,
        "ingest": ingest,
    }


def run(
    base: Settings,
    chunk_sizes: list[int],
    overlap_ratios: list[float],
    squad_articles: int = 20,
    squad_questions: int = 1000,
    seed: int = 0,
    repeat: int = 2,
    context_chars: int | None = None,
    cache_dir: Path | None = None,
    log=print,
) -> dict:
    """The whole benchmark in one process; returns one JSON-able dict (see `save`).

    context_chars (default top_k x chunk_size of the settings) is the prompt budget that sizes are compared at.

    Sweeps every size x overlap ratio, plus the configured (chunk_size, chunk_overlap), whose timings are the best
    of `repeat` runs; other points are timed once.
    """
    from index.embed import get_embedder
    from qa.retrieve import RERANK_DEPTH, SENTENCE_WEIGHT

    embedder = get_embedder(base)
    embedder.embed_documents(["warm-up: load the weights before anything is timed"])
    queries = QueryCache(embedder)
    articles = load_squad_train(squad_articles, seed=seed, cache_dir=cache_dir or Path(base.data_dir) / "cache")
    configured = (base.chunk_size, base.chunk_overlap)
    context_chars = context_chars or base.top_k * base.chunk_size
    points = {(size, int(round(size * ratio))) for size in chunk_sizes for ratio in overlap_ratios} | {configured}
    work = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    try:
        seeds = (work / "article-seeds", work / "squad-seeds")
        seeds[0].mkdir()
        shutil.copy(ARTICLE, seeds[0] / ARTICLE.name)
        write_seed_files(articles, seeds[1])
        squad_set = squad_targets(articles, seeds[1], squad_questions, seed)
        sweep = [
            {
                **_measure(
                    base,
                    work,
                    size,
                    overlap,
                    seeds,
                    squad_set,
                    embedder,
                    queries,
                    repeat if (size, overlap) == configured else 1,
                    context_chars,
                    log,
                ),
                "configured": (size, overlap) == configured,
            }
            for size, overlap in sorted(points)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "retrieval",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": code_version(),
        "embedding_model": base.embedding_model,
        "embed_batch_size": base.embed_batch_size,
        "configured": {"chunk_size": configured[0], "chunk_overlap": configured[1]},
        "rrf_k": base.rrf_k,
        "sentence_rerank": {"depth": RERANK_DEPTH, "weight": SENTENCE_WEIGHT},
        "depth": DEPTH,
        "context_chars": context_chars,
        "query_encode_ms": queries.encode_ms_per_query,
        "article": {
            "questions": sweep[0]["article"]["questions"],
            "source": ARTICLE.name,
            "file": ARTICLE_QUESTIONS.relative_to(ROOT).as_posix(),
        },
        "squad": {
            "articles": [a["title"] for a in articles],
            "questions": len(squad_set),
            "seed": seed,
            "credit": SQUAD_CREDIT,
        },
        "sweep": sweep,
        "recommended": recommend(sweep),
    }


def code_version() -> str:
    """The commit measured, marked dirty when index/ or qa/ have uncommitted changes (numbers depend on them)."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "index", "qa"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("-dirty" if dirty else "")


def save(result: dict, path: Path = RESULTS / "retrieval.json") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def render(result: dict, console) -> None:
    """Rich tables: quality per set, size and mode; ingest and rebuild cost per size; the recommendation."""
    quality = columns_table(
        "set | size/overlap | mode | hit@1 | hit@5 | MRR | k | hit@budget | ms | reach",
        left=("set", "mode"),
        title="Retrieval quality (hybrid = dense + BM25, reciprocal rank fusion)",
        caption=(
            f"MRR over the top {result['depth']}; @budget: a hit within the first k passages that fit "
            f"{result['context_chars']} characters of prompt; reach: share of targets some chunk holds whole; ms: search "
            f"per query with the query vector cached (encoding a query adds {result['query_encode_ms']:.1f} ms)"
        ),
    )
    for row in result["sweep"]:
        for name in ("article", "squad"):
            for mode in MODES:
                m = row[name][mode]
                quality.add_row(
                    name,
                    f"{row['chunk_size']}/{row['chunk_overlap']}",
                    mode,
                    f"{m['hit@1']:.3f}",
                    f"{m['hit@5']:.3f}",
                    f"{m['mrr']:.3f}",
                    str(row["budget_k"]),
                    f"{m['hit@budget']:.3f}",
                    f"{m['search_ms']:.1f}",
                    f"{row[name]['reachable']:.3f}",
                )
    console.print(quality)
    ingest = columns_table(
        (
            "size/overlap | runs | chunks | build s | build c/s | enc c/s | build/enc | "
            "rebuild s | rebuild/full | noop s"
        ),
        title="Ingest of the SQuAD seeds (best of `runs`)",
        caption=(
            "build/enc: full-build chunks/s over raw SentenceTransformer.encode chunks/s (same chunks, same batch size); "
            "rebuild/full: no-change `qa index rebuild` time over a full build; noop: `qa index build` with nothing to do"
        ),
    )
    for row in result["sweep"]:
        i = row["ingest"]
        ingest.add_row(
            f"{row['chunk_size']}/{row['chunk_overlap']}",
            str(i["repeat"]),
            str(i["chunks"]),
            f"{i['full_build_s']:.1f}",
            f"{i['build_chunks_per_s']:.1f}",
            f"{i['encoder_chunks_per_s']:.1f}",
            f"{i['build_vs_encoder']:.2f}",
            f"{i['nochange_rebuild_s']:.2f}",
            f"{i['rebuild_vs_full']:.3f}",
            f"{i['up_to_date_check_s']:.2f}",
        )
    console.print(ingest)
    rec = result["recommended"]
    console.print(
        f"Recommended: chunk_size={rec['chunk_size']} chunk_overlap={rec['chunk_overlap']} top_k={rec['top_k']} "
        f"({rec['rule']}: {rec['quality']:.3f}, best {rec['best_quality']:.3f})"
    )
    console.print(
        f"Code: {result['code']}. Article: {result['article']['questions']} questions ({result['article']['file']}). SQuAD: "
        f"{result['squad']['questions']} questions from {len(result['squad']['articles'])} articles. "
        f"Data: {result['squad']['credit']}."
    )


__all__ = ["Target", "first_hit", "metrics", "recommend", "render", "run", "save"]
