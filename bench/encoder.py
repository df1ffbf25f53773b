"""Encoder work against retrieval quality: the same article and SQuAD sets indexed once per encoding path
(`fp32` = ONNX Runtime, or torch with QA_EMBED_ONNX=false; `int8` = torch dynamic int8 per-channel;
`+no-overlap` = each chunk encoded without the start it shares with the previous chunk), side by side in one
process, so machine load hits every path alike.

    python -m bench encoder [--json] [--articles 20] [--questions 1000] [--paths fp32,int8]

Per path: seconds and chunks/s of the full SQuAD build, hit@1 and MRR@10 of dense and hybrid search on both sets,
and query encoding p50 (uncached). A path may replace fp32 only if no hit@1 or MRR drops by more than 0.01.
Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import columns_table, isolated, log
from index.settings import Settings

PATHS = {
    "fp32": {},
    "int8": {"embed_int8": True},
    "fp32+no-overlap": {"embed_skip_overlap": True},
    "int8+no-overlap": {"embed_int8": True, "embed_skip_overlap": True},
}
MAX_DROP = 0.01


def _quality(settings: Settings, embedder, targets) -> dict:
    from bench.retrieval import DEPTH, first_hit, metrics
    from index.reader import open_index
    from qa.retrieve import Retriever

    retriever = Retriever(settings, open_index(settings, embedder=embedder))
    out = {}
    for mode in ("dense", "hybrid"):
        ranks = [first_hit(retriever.retrieve(t.question, DEPTH, mode=mode), t) for t in targets]
        m = metrics(ranks)
        out[mode] = {"hit@1": m["hit@1"], "mrr": m["mrr"]}
    return out


def run(base: Settings, articles: int = 20, questions: int = 1000, paths: list[str] | None = None) -> dict:
    from bench.retrieval import ARTICLE, article_targets, squad_targets
    from bench.squad import SQUAD_CREDIT, load_squad_train, write_seed_files
    from index.build import build_index
    from index.embed import get_embedder
    from index.reader import open_index

    paths = paths or list(PATHS)
    picked = load_squad_train(articles, seed=0, cache_dir=Path(base.data_dir) / "cache")
    work = Path(tempfile.mkdtemp(prefix="qa-bench-encoder-"))
    rows = {}
    try:
        art_seeds, squad_seeds = work / "article", work / "squad"
        art_seeds.mkdir()
        shutil.copy(ARTICLE, art_seeds / ARTICLE.name)
        write_seed_files(picked, squad_seeds)
        squad_set = squad_targets(picked, squad_seeds, questions, 0)
        for name in paths:
            variant = base.model_copy(update=PATHS[name])
            embedder = get_embedder(variant)
            embedder.embed_documents(["warm-up"])
            log(f"encoder {name}: article and SQuAD builds, {len(squad_set)} questions")
            art = isolated(variant, work / f"art-{name}", art_seeds)
            build_index(art, force=True, fresh=True, progress=False, embedder=embedder)
            source = next(iter(open_index(art, embedder=embedder).chunks.values())).source
            art_targets = article_targets(open_index(art, embedder=embedder).document_text(source), source)
            squad = isolated(variant, work / f"squad-{name}", squad_seeds)
            report = build_index(squad, force=True, fresh=True, progress=False, embedder=embedder)
            encode_ms = []
            for t in squad_set[:200]:
                started = time.perf_counter()
                embedder._encode_one(t.question)  # the served single-query path, uncached
                encode_ms.append(1000 * (time.perf_counter() - started))
            rows[name] = {
                "build_s": report.seconds,
                "chunks": report.chunks,
                "embedded": report.embedded,
                "build_chunks_per_s": report.chunks / report.seconds,
                "query_encode_p50_ms": statistics.median(encode_ms),
                "article": _quality(art, embedder, art_targets),
                "squad": _quality(squad, embedder, squad_set),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = rows.get("fp32")
    for name, row in rows.items():
        if ref is not None:
            row["speedup_vs_fp32"] = ref["build_s"] / row["build_s"]
            row["worst_drop"] = max(
                ref[s][m][k] - row[s][m][k]
                for s in ("article", "squad")
                for m in ("dense", "hybrid")
                for k in ("hit@1", "mrr")
            )
            row["retrieval_holds"] = row["worst_drop"] <= MAX_DROP
    return {
        "articles": articles,
        "questions": len(squad_set),
        "credit": SQUAD_CREDIT,
        "paths": rows,
        "max_drop": MAX_DROP,
    }


def render(result: dict, console) -> None:
    table = columns_table(
        (
            "path | build s | chunks/s | x fp32 | query p50 ms | article hybrid hit@1/MRR | "
            "squad dense hit@1/MRR | squad hybrid hit@1/MRR | worst drop | holds"
        ),
        left=("path",),
        title=f"Encoding paths: {result['articles']} SQuAD articles, {result['questions']} questions",
    )
    for name, r in result["paths"].items():
        q = lambda s, m: f"{r[s][m]['hit@1']:.3f}/{r[s][m]['mrr']:.3f}"  # noqa: E731
        table.add_row(
            name,
            f"{r['build_s']:.1f}",
            f"{r['build_chunks_per_s']:.1f}",
            f"{r.get('speedup_vs_fp32', 1):.2f}",
            f"{r['query_encode_p50_ms']:.1f}",
            q("article", "hybrid"),
            q("squad", "dense"),
            q("squad", "hybrid"),
            f"{r.get('worst_drop', 0):.3f}",
            str(r.get("retrieval_holds", "")),
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--articles", type=int, default=20, help="SQuAD v1.1 train articles")
        p.add_argument("--questions", type=int, default=1000, help="SQuAD questions asked (0: all)")
        p.add_argument("--paths", default="fp32,int8", help=f"comma-separated, of: {', '.join(PATHS)}")

    return main_for(
        "encoder",
        __doc__,
        add_args,
        lambda s, a: run(s, a.articles, a.questions, [p for p in a.paths.split(",") if p]),
        render,
        argv,
    )


__all__ = ["MAX_DROP", "PATHS", "main", "render", "run"]
