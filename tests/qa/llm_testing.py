"""Shared set-up for tests that need the real local model: assemble the packaged GGUF once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.settings import Settings
from qa.model_file import ensure_model_file


@pytest.fixture(scope="session")
def packaged_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, assembled from its part packages into a session temp dir (never the project's .qa/)."""
    data_dir = tmp_path_factory.mktemp("llm-data")
    return ensure_model_file(Settings(_env_file=None, data_dir=data_dir))


@pytest.fixture(scope="session")
def local_chat_model(packaged_model_path: Path):
    """The local backend exactly as `get_chat_model` builds it from default settings (one server per session)."""
    from qa.llm import get_chat_model

    model = get_chat_model(Settings(_env_file=None, llm="local", llm_model_path=packaged_model_path))
    model.load()
    return model


@pytest.fixture(scope="session")
def packaged_check_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The answer check's model (the packaged 1.5B), assembled once per session into a temp dir."""
    data_dir = tmp_path_factory.mktemp("check-data")
    settings = Settings(_env_file=None, data_dir=data_dir)
    return ensure_model_file(settings, settings.verify_model)
