"""Shared set-up for tests that need the real local models: the packaged GGUFs, assembled once into the folder the
test servers link them from (tests/servers.py, SHARED_MODELS), never into the project's .qa/."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.settings import Settings
from qa.model_file import ensure_model_file
from tests.servers import SHARED_MODELS


@pytest.fixture(scope="session")
def packaged_model_path() -> Path:
    """The default model, assembled from its part packages (checked against its sha256)."""
    return ensure_model_file(Settings(_env_file=None, data_dir=SHARED_MODELS))


@pytest.fixture(scope="session")
def local_chat_model(packaged_model_path: Path):
    """The local backend exactly as `get_chat_model` builds it from default settings (one server per session)."""
    from qa.llm import get_chat_model

    model = get_chat_model(Settings(_env_file=None, llm="local", llm_model_path=packaged_model_path))
    model.load()
    return model


@pytest.fixture(scope="session")
def packaged_check_model_path() -> Path:
    """The answer check's model (the packaged 1.5B), assembled the same way."""
    settings = Settings(_env_file=None, data_dir=SHARED_MODELS)
    return ensure_model_file(settings, settings.verify_model)
