"""Whole-process ingest: `qa index rebuild` started as a new process against the LangChain tutorial pipeline
started as a new process, on the same documents, wall clock from start to exit (imports, model load and
everything a person waits for included).

    python -m bench ingest-process [--json] [--articles 48] [--rounds 2]

`bench ingest` compares the pipelines inside one warmed-up process; this one is what a person sees at the
command line. Both sides start from warm disk caches (one untimed run of each first), and ours from a warm ONNX
export (`QA_ONNX_CACHE_DIR`, as after the first build on a machine). The tutorial side is
`RecursiveCharacterTextSplitter(1000, 200)` + `HuggingFaceEmbeddings` (defaults, same model files) +
`Chroma.from_documents`, the code of `bench.ingest.tutorial_ingest` in a script of its own. Rounds alternate the
two, each into a fresh store; the best of each side is compared. Corpus: SQuAD v1.1 train articles (Rajpurkar et
al., 2016, CC BY-SA 4.0); 48 articles are about 1.6 M characters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import columns_table, log
from index.settings import Settings

TARGET = 1.5  # the tutorial's seconds over ours

_TUTORIAL = """
import sys
from pathlib import Path

from bench.ingest import tutorial_embedder, tutorial_ingest
from index.settings import Settings

tutorial_ingest(Path(sys.argv[1]), Path(sys.argv[2]), tutorial_embedder(Settings(_env_file=None)))
"""


def _timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def _env(base: Settings, root: Path, seeds: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(QA_SEEDS_DIR=str(seeds), QA_DATA_DIR=str(root / "data"), QA_STORE_DIR=str(root / "store"))
    if base.onnx_cache_dir is not None:
        env["QA_ONNX_CACHE_DIR"] = str(base.onnx_cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return env


def run(base: Settings, articles: int = 48, rounds: int = 2, seed: int = 0) -> dict:
    from bench.squad import SQUAD_CREDIT, load_squad_train, write_seed_files

    qa = str(Path(sys.executable).with_name("qa"))
    picked = load_squad_train(articles, seed=seed, cache_dir=Path(base.data_dir) / "cache")
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ingest-process-"))
    ours, tutorial = [], []
    try:
        seeds = work / "seeds"
        write_seed_files(picked, seeds)
        corpus_chars = sum(len(p.read_text(encoding="utf-8")) for p in seeds.glob("*.txt"))
        script = work / "tutorial.py"
        script.write_text(_TUTORIAL, encoding="utf-8")
        for r in range(rounds + 1):  # round 0 warms disk caches and the ONNX export; it is not counted
            log(f"ingest-process round {r}/{rounds}{' (warm-up)' if r == 0 else ''}: qa index rebuild, tutorial")
            env = _env(base, work / f"ours-{r}", seeds)
            a = _timed([qa, "index", "rebuild"], env)
            b = _timed([sys.executable, str(script), str(seeds), str(work / f"tutorial-{r}")], env)
            if r:
                ours.append(a)
                tutorial.append(b)
            shutil.rmtree(work / f"ours-{r}", ignore_errors=True)
            shutil.rmtree(work / f"tutorial-{r}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = min(tutorial) / min(ours)
    return {
        "articles": articles,
        "rounds": rounds,
        "corpus_chars": corpus_chars,
        "credit": SQUAD_CREDIT,
        "ours_s": ours,
        "tutorial_s": tutorial,
        "per_round_ratio": [round(t / o, 3) for o, t in zip(ours, tutorial)],
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio >= TARGET,
    }


def render(result: dict, console) -> None:
    table = columns_table(
        "process | seconds per round | best",
        left=("process",),
        title=f"Whole-process ingest of {result['articles']} SQuAD train articles ({result['corpus_chars']:,} chars)",
    )
    for name, key in (("qa index rebuild", "ours_s"), ("tutorial script", "tutorial_s")):
        table.add_row(name, " / ".join(f"{s:.1f}" for s in result[key]), f"{min(result[key]):.1f}")
    console.print(table)
    console.print(
        f"tutorial / ours: {result['ratio']:.2f} (per round {result['per_round_ratio']}; target >= {TARGET}) "
        f"{'met' if result['met'] else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--articles", type=int, default=48, help="SQuAD v1.1 train articles in the corpus")
        p.add_argument("--rounds", type=int, default=2, help="alternating rounds after one warm-up round")
        p.add_argument("--seed", type=int, default=0)

    return main_for(
        "ingest-process", __doc__, add_args, lambda s, a: run(s, a.articles, max(1, a.rounds), a.seed), render, argv
    )


__all__ = ["TARGET", "main", "render", "run"]
