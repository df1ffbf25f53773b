"""The `qa` command end to end, in subprocesses, on a real index of the article in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import run_qa

ROOT = Path(__file__).resolve().parents[2]


def qa(
    *args: str, stdin: str | None = None, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    full_env.update(env or {})
    return run_qa(*args, env=full_env, timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("cli")
    seeds = base / "seeds"
    seeds.mkdir()
    (seeds / "article.txt").write_bytes((ROOT / "seeds" / "pakistan-china-strategic-dialogue.txt").read_bytes())
    store = base / "store"
    r = qa("index", "build", "--seeds", str(seeds), "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "Indexed 1 documents" in r.stdout
    return str(seeds), str(store)


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_help_and_status_do_not_load_torch(dirs):
    seeds, store = dirs
    code = (
        "import sys\nfrom ui import cli\n"
        f"sys.argv = ['qa', 'index', 'status', '--json', '--seeds', {seeds!r}, '--store', {store!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'CHROMA' if 'chromadb' in sys.modules else '')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    status = json.loads(r.stdout.splitlines()[0])
    assert status["exists"] and status["documents"] == 1 and status["chunks"] > 5
    assert status["dimension"] == 384 and "MiniLM" in status["model"]
    assert "NO-TORCH" in r.stdout.splitlines()[-1]
    assert qa("--help").returncode == 0


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_build_again_is_up_to_date(dirs):
    seeds, store = dirs
    r = qa("index", "build", "--seeds", seeds, "--store", store)
    assert r.returncode == 0 and "up to date" in r.stdout


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_search_json_batch_format_and_errors(dirs):
    seeds, store = dirs
    stdin = "Who co-chaired the dialogue?\n   \n" + "x" * 2001 + "\nWhich highway will see smooth passage?\n"
    r = qa("search", "--json", "-", "--k", "3", "--seeds", seeds, "--store", store, stdin=stdin)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 4 and r.returncode == 1  # the batch went on; the exit code reports the failures
    first = lines[0]
    assert first["query"] == "Who co-chaired the dialogue?" and len(first["results"]) == 3
    top = first["results"][0]
    assert set(top) == {"rank", "source", "chunk_id", "start", "end", "score", "text", "page"}
    assert top["page"] is None  # a text file has no pages
    assert top["rank"] == 1 and top["source"] == "article.txt" and "co-chaired by" in top["text"]
    assert "empty" in lines[1]["error"] and "2,000" in lines[2]["error"]
    assert any("Karakoram Highway" in x["text"] for x in lines[3]["results"][:2])


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_search_human_output_and_empty_query(dirs):
    seeds, store = dirs
    r = qa("search", "Where will the next round be held?", "--seeds", seeds, "--store", store)
    assert r.returncode == 0 and "article.txt:" in r.stdout and "Islamabad" in r.stdout
    r = qa("search", "  ", "--seeds", seeds, "--store", store)
    assert r.returncode == 1 and "empty" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_ask_json_extractive_batch_and_conversation(dirs):
    seeds, store = dirs
    stdin = "Who co-chaired the dialogue?\n\nWhat is the population of Gwadar?\n"
    r = qa("ask", "--json", "-", "--llm", "extractive", "--seeds", seeds, "--store", store, stdin=stdin)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 3
    a = lines[0]
    assert set(a) == {"question", "answer", "abstained", "citations", "passages", "rewritten_question", "timings_ms"}
    assert not a["abstained"] and "Ishaq Dar" in a["answer"] and "[1]" in a["answer"]
    assert set(a["citations"][0]) == {"n", "source", "chunk_id", "start", "end", "quote", "page"}
    assert set(a["passages"][0]) == {"n", "source", "start", "end", "score", "text", "page"}
    assert a["citations"][0]["page"] is None and a["passages"][0]["page"] is None
    assert set(a["timings_ms"]) == {"retrieve", "first_token", "total"}
    assert "error" in lines[1] and lines[1]["question"] == ""
    assert lines[2]["abstained"] and lines[2]["citations"] == [] and lines[2]["passages"]


def test_index_status_without_index(tmp_path):
    r = qa("index", "status", "--store", str(tmp_path / "none"))
    assert r.returncode == 1 and "qa index build" in r.stdout


@pytest.mark.slow  # a `qa` process per step, each loading the embedder
def test_names_and_messages_are_printed_literally(tmp_path):
    """File names with square brackets are not Rich markup: printed as they are, never dropped or a crash."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "notes [draft].md").write_text("The orchard in Hunza grows apricots.\n", encoding="utf-8")
    (seeds / "report [bold red]final.doc").write_bytes(b"old format")
    store = str(tmp_path / "store")
    r = qa("index", "build", "--seeds", str(seeds), "--store", store, env={"COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    assert "Skipped: skipped report [bold red]final.doc: unsupported file type" in r.stderr
    r = qa("search", "apricots in Hunza", "--k", "1", "--seeds", str(seeds), "--store", store, env={"COLUMNS": "300"})
    assert r.returncode == 0 and "1. notes [draft].md:0-" in r.stdout, r.stdout + r.stderr
    r = qa("index", "status", "--seeds", str(seeds), "--store", store + " [/]", env={"COLUMNS": "300"})
    assert r.returncode == 1 and f"No index yet at {store} [/]." in r.stdout and "Traceback" not in r.stderr


def test_printed_text_never_carries_terminal_escape_sequences(monkeypatch):
    """Answers, quotes, passages and names reach the terminal without escape sequences or control characters."""
    import io

    from rich.console import Console

    from qa.types import Answer, Citation, Passage
    from ui import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, force_terminal=True, color_system=None, width=300))
    evil = "\x1b]0;PWNED\x07Clear\x1b[2J screen\x1b]52;c;ZXZpbA==\x07 now\x9b31m."
    passage = Passage(1, "c1", f"a [/] {evil}.txt", "t", 0, 10, 1.0, evil)
    cli._print_sources(Answer("q", evil, False, [Citation(1, f"[b]{evil}[/b].txt", "c1", 0, 10, evil)], [passage]))
    cli._print_sources(Answer("q", evil, True, [], [passage]))
    shown = buffer.getvalue()
    assert "\x1b]" not in shown and "\x9b" not in shown and "\x07" not in shown and "PWNED" not in shown
    assert "\x1b[2J" not in shown and "ZXZpbA" not in shown
    assert "Clear screen now." in shown and "[b]Clear screen now.[/b].txt" in shown and "a [/] Clear" in shown


@pytest.mark.slow  # starts `qa serve`
def test_os_errors_and_a_busy_port_give_a_message_not_a_traceback(tmp_path):
    import socket

    blocker = tmp_path / "store-is-a-file"
    blocker.write_text("not a folder")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Some text.\n", encoding="utf-8")
    r = qa("index", "build", "--seeds", str(seeds), "--store", str(blocker / "store"))
    assert r.returncode == 1 and "Error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = qa(
            "serve",
            "--port",
            str(port),
            "--llm",
            "extractive",
            "--seeds",
            str(seeds),
            "--store",
            str(tmp_path / "store"),
            env={"QA_DATA_DIR": str(tmp_path / "data")},
        )
        assert r.returncode == 1 and "Error:" in r.stderr and str(port) in r.stderr, r.stderr[-2000:]
        assert "--port" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "store").exists()  # refused before anything was opened or loaded
        r = qa("mcp", "--http", str(port), "--llm", "extractive", "--seeds", str(seeds), "--store", str(blocker))
        assert r.returncode == 1 and f"Cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr[-2000:]
        assert "--http" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # starts `qa serve`
def test_qa_serve_logs_what_it_serves_on_stderr(tmp_path):
    """An operator sees the server's own log lines (here: what it serves, and where) without configuring logging."""
    import time
    import urllib.request

    from tests.servers import free_port, stop_process

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Some text.\n", encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(QA_DATA_DIR=str(tmp_path / "data"), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "ui.cli", "serve", "--port", str(port), "--llm", "extractive", "--no-watch"]
    command += ["--seeds", str(seeds), "--store", str(tmp_path / "store")]
    log = tmp_path / "serve.log"
    with log.open("w") as errors:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as up:
                    assert up.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
    finally:
        stop_process(proc)
    line = next(ln for ln in log.read_text().splitlines() if "serving http://" in ln)
    assert " INFO ui.web: serving http://127.0.0.1:" in line and "answers: extractive" in line, line
