"""The `qa` command end to end, in subprocesses, on a real index of the article in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def qa(*args: str, stdin: str | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=timeout)


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


def test_help_and_status_do_not_load_torch(dirs):
    seeds, store = dirs
    code = ("import sys\nfrom ui import cli\n"
            f"sys.argv = ['qa', 'index', 'status', '--json', '--seeds', {seeds!r}, '--store', {store!r}]\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'CHROMA' if 'chromadb' in sys.modules else '')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    status = json.loads(r.stdout.splitlines()[0])
    assert status["exists"] and status["documents"] == 1 and status["chunks"] > 5
    assert status["dimension"] == 384 and "MiniLM" in status["model"]
    assert "NO-TORCH" in r.stdout.splitlines()[-1]
    assert qa("--help").returncode == 0


def test_build_again_is_up_to_date(dirs):
    seeds, store = dirs
    r = qa("index", "build", "--seeds", seeds, "--store", store)
    assert r.returncode == 0 and "up to date" in r.stdout


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


def test_search_human_output_and_empty_query(dirs):
    seeds, store = dirs
    r = qa("search", "Where will the next round be held?", "--seeds", seeds, "--store", store)
    assert r.returncode == 0 and "article.txt:" in r.stdout and "Islamabad" in r.stdout
    r = qa("search", "  ", "--seeds", seeds, "--store", store)
    assert r.returncode == 1 and "empty" in r.stderr and "Traceback" not in r.stderr


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
