"""docs/configuration.md is generated from index/settings.py: the two never disagree."""

from pathlib import Path

from index.settings import Settings, configuration_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_configuration_page_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == configuration_markdown(), "run: python -m index.settings > docs/configuration.md"


def test_every_setting_is_on_the_page_with_its_default_and_a_meaning():
    text = configuration_markdown()
    for name in Settings.model_fields:
        row = next(line for line in text.splitlines() if line.startswith(f"| `QA_{name.upper()}` |"))
        assert row.split("|")[3].strip(), f"QA_{name.upper()} has no description in index/settings.py"
