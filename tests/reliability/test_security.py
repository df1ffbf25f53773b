"""Security defaults on the running page: loopback only, a private data folder, no files served from it, and no
file-system paths or tracebacks in what a person or a program is shown. (Login: tests/ui/test_api.py; upload
limits: test_probes.py.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest

from index import store
from index.settings import Settings
from tests.reliability.qa_cli import assert_no_traceback
from tests.servers import ROOT


def assert_private(folder: Path) -> None:
    """Every folder under `folder` (and itself) is 0700 and every file 0600."""
    wrong = [
        (str(p.relative_to(folder.parent)), oct(p.stat().st_mode & 0o777))
        for p in [folder, *folder.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & 0o777 != (0o700 if p.is_dir() else 0o600)
    ]
    assert wrong == []


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_page_listens_on_loopback_only(page_server):
    assert Settings.model_fields["host"].default == "127.0.0.1"
    port = urllib.parse.urlsplit(page_server.url).port
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=5).close()


def test_the_data_folder_is_user_only(page_server):
    """Index, Chroma's files and the lock files, all written by the serving process: folders 0700, files 0600."""
    assert (page_server.data_dir / "store" / store.POINTER).is_file()
    assert_private(page_server.data_dir)


def test_an_existing_data_folder_is_tightened_by_the_process_that_writes_it(tmp_path):
    data = tmp_path / "data"
    (data / "store").mkdir(parents=True, mode=0o755)
    os.chmod(data, 0o755)
    outside = tmp_path / "elsewhere"
    code = (
        "from pathlib import Path\nfrom index.settings import Settings\nfrom index.owner import claim_store\n"
        f"claim_store(Settings(_env_file=None, data_dir=Path({str(data)!r})), 'build')\n"
        f"claim_store(Settings(_env_file=None, data_dir=Path({str(tmp_path / 'other')!r}), "
        f"store_dir=Path({str(outside)!r})), 'build')\n"
        f"(Path({str(data)!r}) / 'store' / 'new.json').write_text('{{}}')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    assert_private(data)
    assert oct(outside.stat().st_mode & 0o777) == "0o700"
    assert not (tmp_path / "other").exists()  # a build with the store elsewhere leaves the data folder alone


def test_no_data_seed_or_system_file_is_served(page_server):
    gradio_tmp = page_server.seeds_dir.parent / "gradio-tmp"
    targets = [
        page_server.data_dir / "store" / store.POINTER,
        page_server.data_dir / "store" / "owner.lock",
        next(page_server.seeds_dir.iterdir()),
        Path("/etc/passwd"),
        gradio_tmp / ".." / "data" / "store" / store.POINTER,
    ]
    for target in targets:
        r = httpx.get(page_server.url + "gradio_api/file=" + str(target), timeout=30)
        assert r.status_code in (403, 404), (target, r.status_code)
        for content in ('"collection"', "root:x:", "Wang Yi", "serve "):
            assert content not in r.text


def test_errors_on_the_page_and_the_api_show_no_paths_or_tracebacks(page_server):
    """A damaged index produces a message that names a file in the data folder; people and programs see it
    without the path (and the page recovers when the index is whole again)."""
    from gradio_client.exceptions import AppError

    pointer = page_server.data_dir / "store" / store.POINTER
    whole = pointer.read_text()
    client = page_server.client()
    try:
        pointer.write_text(json.dumps({"format": 1, "collection": "qa-never-built"}))
        with pytest.raises(AppError) as err:
            client.predict("Who co-chaired the dialogue?", None, api_name="/ask")
        message = str(err.value)
        chat, sources = client.predict("Who co-chaired the dialogue?", [], api_name="/chat")
        bubble = chat[-1]["content"]
        bubble = bubble if isinstance(bubble, str) else " ".join(part.get("text", "") for part in bubble)
    finally:
        pointer.write_text(whole)
    for shown in (message, bubble, sources):
        assert "qa index rebuild" in shown and "(path hidden)" in shown
        assert str(page_server.data_dir) not in shown and "/tmp/" not in shown and "manifest.json" not in shown
        assert_no_traceback(shown)
    assert "Dar" in client.predict("Who co-chaired the dialogue?", None, api_name="/ask")["answer"]


def test_page_notes_hide_paths_of_a_database_moved_aside_and_of_a_missing_model(tmp_path, article_settings):
    """Messages that name files reach the page without the paths: a rebuild's note about a damaged database it
    moved aside, and the status line's reason for answering without the model."""
    from qa.service import QAService
    from tests.reliability.test_faults import _garble_db
    from ui.web import ChatApp

    data = tmp_path / "data"
    shutil.copytree(article_settings.data_dir, data)  # never opened by this process
    settings = article_settings.with_overrides(data_dir=data, llm="local", llm_model_path=tmp_path / "gone.gguf")
    _garble_db(settings.store_path)
    app = ChatApp(QAService(settings))

    progress, status = list(app.rebuild())[-1]
    assert 'data-state="done"' in progress and "moved the damaged Chroma database aside to (path hidden)" in progress
    app.service.llm()  # the model is missing: the service falls back to the extractive backend
    status = app.status()
    assert "Answering model: extractive (no generative model)" in status
    assert "which is not a file" in status and "(path hidden)" in status
    for shown in (progress, status):
        assert str(tmp_path) not in shown and "/tmp/" not in shown
