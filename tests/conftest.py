"""Shared fixtures: every test gets its own seeds and store folders; nothing touches the project's .qa/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index.settings import Settings
from tests.servers import rebuilt_server

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt"


# A test that uses one of these running servers is slow (`make test-fast` leaves it out), marked or not.
SERVER_FIXTURES = {"live_server", "page_server", "light_server"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    d = tmp_path / "seeds"
    d.mkdir()
    shutil.copy(SEED, d / SEED.name)
    return d


@pytest.fixture
def settings(tmp_path: Path, seeds_dir: Path) -> Settings:
    """Settings isolated in a temp dir (no .env, no QA_ variables from the caller leak in)."""
    return Settings(_env_file=None, seeds_dir=seeds_dir, data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One server with the real local LLM for the whole session (UI and load tests); its index is built through
    the page's own rebuild endpoint. Tests must not change its documents."""
    with rebuilt_server(tmp_path_factory.mktemp("live"), "live-server", QA_LLM="local") as server:
        yield server
