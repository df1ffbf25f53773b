"""Fixtures of the reliability tests: one light page server (extractive backend, 1 MB upload limit) shared by the
fault, probe and security tests, and one built article index with an extractive service for in-process probes.
Package-scoped: the server stops when this folder's tests are done."""

from __future__ import annotations

import pytest

from index.build import build_index
from index.settings import Settings
from tests.conftest import SEED
from tests.servers import rebuilt_server

UPLOAD_MAX_MB = 1


@pytest.fixture(scope="package")
def page_server(tmp_path_factory):
    """`ui.web.serve` with QA_LLM=extractive (generation is not what these tests test); index built by /rebuild.
    Tests may add documents to it but must leave the article answerable."""
    with rebuilt_server(
        tmp_path_factory.mktemp("reliability"),
        "reliability-server",
        QA_LLM="extractive",
        QA_UPLOAD_MAX_MB=str(UPLOAD_MAX_MB),
    ) as server:
        yield server


@pytest.fixture(scope="package")
def article_settings(tmp_path_factory) -> Settings:
    """The seed article indexed once (real embedder, real Chroma); answering is extractive."""
    root = tmp_path_factory.mktemp("article")
    (root / "seeds").mkdir()
    (root / "seeds" / SEED.name).write_bytes(SEED.read_bytes())
    settings = Settings(_env_file=None, seeds_dir=root / "seeds", data_dir=root / "data", llm="extractive")
    build_index(settings, progress=False)
    return settings


@pytest.fixture(scope="package")
def article_service(article_settings):
    from qa.service import QAService

    service = QAService(article_settings)
    service.warm_up()
    return service
