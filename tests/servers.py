"""Real chat servers for tests: `ui.web.serve` in its own process on a free 127.0.0.1 port, over a temp seeds
folder and data folder. The session-wide `live_server` fixture (real local model) lives in tests/conftest.py.
free_port and stop_process serve the benchmarks too (bench/coldstart.py, bench/load.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt"
ARTIFACTS = ROOT / "test-artifacts"
STARTUP_SECONDS = 240
ANSWER_SECONDS = 300  # one answer from the local model on a busy 2-core machine, with margin
# The packaged model files, assembled once (checked against their sha256) and linked into each test server's data
# folder, as `make run` prepares them before `qa serve`: a server that copied 1.6 GB itself would keep its first
# questions waiting on the copy.
SHARED_MODELS = Path(tempfile.gettempdir()) / "qa-test-models"

SERVE = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "from index.settings import Settings\n"
    "from ui.web import serve\n"
    "serve(Settings(_env_file=None), port=int(sys.argv[1]), watch=sys.argv[2] == 'watch')\n"
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server started by a test or a benchmark."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it does not exit within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def launch(command: list[str], env: dict[str, str], out) -> subprocess.Popen:
    """Start `command` from the checkout in its own session, stdout and stderr to the open file `out`."""
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run_qa(
    *args: str, env: dict[str, str], timeout: float = STARTUP_SECONDS, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run the checkout's `qa` command to the end, `input` on its stdin; its output captured as text."""
    command = [sys.executable, "-m", "ui.cli", *args]
    return subprocess.run(command, input=input, cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True)


@dataclass
class Server:
    url: str
    seeds_dir: Path
    data_dir: Path
    log: Path
    auth: tuple[str, str] | None = None

    def client(self):
        from gradio_client import Client

        return Client(self.url, auth=self.auth, verbose=False, download_files=False, analytics_enabled=False)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                return
        except OSError as exc:
            if getattr(exc, "code", None) == 401:  # up, behind a login
                return
            time.sleep(0.5)
    raise RuntimeError(f"server not ready after {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


def start_server(root: Path, name: str, watch: bool = False, **env_overrides: str):
    """Start `serve` in a subprocess with QA_* settings from env_overrides; returns (Server, process).

    The documents folder is watched only when asked (`watch`): tests that add files and press Rebuild
    themselves must not race the watcher's own rebuild."""
    seeds, data = root / "seeds", root / "data"
    seeds.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, seeds / SEED.name)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "GRADIO_"))}
    env.update(
        QA_SEEDS_DIR=str(seeds),
        QA_DATA_DIR=str(data),
        GRADIO_TEMP_DIR=str(root / "gradio-tmp"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        **env_overrides,
    )
    if env.get("QA_LLM", "local") == "local" and "QA_LLM_MODEL_PATH" not in env:
        link_models(data / "models")
    port = free_port()
    with log.open("w") as out:
        proc = launch([sys.executable, "-c", SERVE, str(port), "watch" if watch else "no-watch"], env, out)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_ready(url, proc, log)
    except BaseException:
        stop_process(proc)
        raise
    user, _, password = env_overrides.get("QA_AUTH", "").partition(":")
    return Server(url, seeds, data, log, (user, password) if user else None), proc


def link_models(folder: Path) -> None:
    """The default model files (SHARED_MODELS) in `folder`, hard-linked (same bytes and mtime, so their checksum
    record holds) or copied where a link cannot be made."""
    from index.settings import Settings
    from qa.model_file import checksum_record, prepare_models

    folder.mkdir(parents=True, exist_ok=True)
    for path in prepare_models(Settings(_env_file=None, data_dir=SHARED_MODELS)):
        checked = checksum_record(path)
        try:
            os.link(path, folder / path.name)
        except OSError:
            shutil.copy2(path, folder / path.name)
        shutil.copy2(checked, folder / checked.name)


@contextmanager
def rebuilt_server(root: Path, name: str, **env_overrides: str) -> Iterator[Server]:
    """A server from start_server (same arguments) whose index is built through the page's own Rebuild
    endpoint, as a person would build it; stopped on exit."""
    server, proc = start_server(root, name, **env_overrides)
    try:
        progress, _status = server.client().submit(api_name="/rebuild").result(timeout=STARTUP_SECONDS)
        assert 'data-state="done"' in progress, progress
        yield server
    finally:
        stop_process(proc)


def build_index(root: Path, timeout: int = STARTUP_SECONDS) -> dict[str, str]:
    """Seeds (the article) and an index under root/seeds and root/data, built by `qa index build` as a user
    would; returns the QA_* variables that point a server or a `qa` command at them."""
    seeds, data = root / "seeds", root / "data"
    seeds.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, seeds / SEED.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "GRADIO_"))}
    qa_env = {"QA_SEEDS_DIR": str(seeds), "QA_DATA_DIR": str(data)}
    env.update(qa_env, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = run_qa("index", "build", env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"qa index build failed:\n{done.stderr[-3000:]}")
    return qa_env
