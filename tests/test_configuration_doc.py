"""docs/configuration.md is generated from index/settings.py: the two never disagree."""

from pathlib import Path

from index.settings import GROUPS, Settings, configuration_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_configuration_page_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == configuration_markdown(), (
        "run: python -m index.settings > docs/configuration.md"
    )


def test_every_setting_is_on_the_page_with_its_default_and_a_meaning():
    text = configuration_markdown()
    for name in Settings.model_fields:
        row = next(line for line in text.splitlines() if line.startswith(f"| `QA_{name.upper()}` |"))
        assert row.split("|")[3].strip(), f"QA_{name.upper()} has no description in index/settings.py"


def test_every_setting_has_a_description_and_exactly_one_group():
    for name, field in Settings.model_fields.items():
        assert (field.description or "").strip(), f"{name} has no Field(description=...)"
    grouped = [name for group in GROUPS for name in group.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields), "each setting belongs to one group"
    text = configuration_markdown()
    for group in GROUPS:
        assert f"## {group.__doc__.strip()}" in text


def test_grouped_settings_keep_their_flat_variable_names(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "7")
    monkeypatch.setenv("QA_LLM", "extractive")
    monkeypatch.setenv("QA_MIN_RELEVANCE", "0.5")
    monkeypatch.setenv("QA_CHROMA_PORT", "9000")
    monkeypatch.setenv("QA_SEEDS_DIR", "/tmp/docs")
    s = Settings(_env_file=None)
    assert (s.top_k, s.llm, s.min_relevance, s.chroma_port, s.seeds_dir) == (
        7,
        "extractive",
        0.5,
        9000,
        Path("/tmp/docs"),
    )
