"""The hand-written question sets must stay true to the article: a wrong gold answer silently corrupts every score."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from index.load import clean_text

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data"
RAW = (ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt").read_text(encoding="utf-8")
_, _, ARTICLE = clean_text(RAW)  # what the index stores and chunk offsets point into
RETRIEVAL = json.loads((DATA / "article_retrieval.json").read_text(encoding="utf-8"))["questions"]
EVAL = json.loads((DATA / "article_eval.json").read_text(encoding="utf-8"))


def _with_gold() -> list[dict]:
    turns = [t for c in EVAL["conversations"] for t in c["turns"]]
    return EVAL["answerable"] + turns + EVAL["multilingual"]


def _compact(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}|[0-9]+", text.lower()))


def test_counts_meet_the_minimums():
    assert len(RETRIEVAL) >= 45
    assert len(EVAL["answerable"]) >= 45
    assert len(EVAL["unanswerable"]) >= 14
    assert len(EVAL["conversations"]) >= 8 and all(len(c["turns"]) >= 2 for c in EVAL["conversations"])
    langs = {m["lang"] for m in EVAL["multilingual"]}
    assert len(EVAL["multilingual"]) >= 5 and {"ur", "zh", "ar"} <= langs


def test_ids_and_questions_are_unique():
    items = RETRIEVAL + EVAL["answerable"] + EVAL["unanswerable"] + EVAL["multilingual"] + EVAL["conversations"]
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))
    for group in (RETRIEVAL, EVAL["answerable"], EVAL["unanswerable"]):
        questions = [i["question"].lower() for i in group]
        assert len(questions) == len(set(questions))


@pytest.mark.parametrize("item", RETRIEVAL + _with_gold(), ids=lambda i: i.get("id", i["question"][:40]))
def test_support_is_verbatim_in_the_cleaned_article(item):
    support = item["support"]
    assert 20 <= len(support) <= 200
    assert support in ARTICLE and support in RAW
    assert "\n" not in support  # within one paragraph, so a chunk can hold it


def test_retrieval_supports_are_unique_and_cover_every_paragraph():
    for item in RETRIEVAL:
        assert ARTICLE.count(item["support"]) == 1, item["id"]
    paragraphs = [p for p in ARTICLE.split("\n") if p.strip()]
    uncovered = [p[:60] for p in paragraphs if not any(i["support"] in p for i in RETRIEVAL)]
    assert not uncovered


def test_questions_are_paraphrases_not_copies():
    for item in RETRIEVAL:
        assert item["support"].lower() not in item["question"].lower(), item["id"]


@pytest.mark.parametrize("item", _with_gold(), ids=lambda i: i.get("id", i["question"][:40]))
def test_gold_aliases_agree_with_the_support(item):
    answers = item["answers"]
    assert answers and all(a.strip() for a in answers)
    # The main alias is what the article says, inside the very span that supports it.
    assert answers[0].lower() in item["support"].lower()
    # Other aliases are the article's wording too, or a re-spelling of the main one ("Jan 4", "people-centered").
    for alias in answers[1:]:
        assert _compact(alias) in _compact(ARTICLE) or _tokens(alias) & _tokens(answers[0]), alias


def test_unanswerable_questions_have_no_answer_in_the_article():
    for item in EVAL["unanswerable"]:
        assert set(item) >= {"id", "question"} and "answers" not in item and "support" not in item
    # The things they ask for are absent: no population, no money, no casualty count, no Prime Minister's name.
    lowered = ARTICLE.lower()
    for absent in (
        "population",
        "billion",
        "million",
        "$",
        "killed",
        "prime minister shehbaz",
        "kilomet",
        "metres",
        "ambassador",
        "sixth round",
        "eighth round",
        "8th round",
    ):
        assert absent not in lowered, absent
    digits = re.findall(r"\d+", ARTICLE)
    assert set(digits) <= {"7", "3", "4", "5", "2026", "75", "2025", "2029", "14", "15", "2024", "2", "0"}


def test_follow_ups_depend_on_history():
    """A follow-up leans on earlier turns: it does not name its answer, and it is elliptical or points back."""
    for conv in EVAL["conversations"]:
        for turn in conv["turns"][1:]:
            q = turn["question"].lower()
            assert not any(a.lower() in q for a in turn["answers"]), turn["question"]
            elliptical = len(q.split()) <= 4  # "In which year?", "And which highway?"
            anaphoric = re.search(
                r"\b(it|its|itself|he|him|his|she|her|they|them|their|that|this|those|these|there|the same|one)\b", q
            )
            assert elliptical or anaphoric, turn["question"]


def test_multilingual_items_are_not_in_english():
    scripts = {"ur": r"[\u0600-\u06ff]", "ar": r"[\u0600-\u06ff]", "zh": r"[\u4e00-\u9fff]"}
    for item in EVAL["multilingual"]:
        assert re.search(scripts[item["lang"]], item["question"]), item["id"]
        assert item["question_en"] and item["answers_native"]
