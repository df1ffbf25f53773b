"""Cold start and memory of the real entry points, each in a new process.

    python -m bench coldstart [--json]     # `qa serve` -> UI ready -> first answer; `qa ask` end to end; importtime
    python -m bench memory [--json] [--questions 5]   # peak RSS of `qa serve` while it answers

Preparation (not timed): a bench data folder `<QA_DATA_DIR>/bench-coldstart` with the seed article, its index built,
and the packaged model assembled there once, so what is timed is a start as a person sees it after installing
(the OS file cache is warm: the machine has run the app before). The server is started with
`python -m ui.cli serve --port P` on a free 127.0.0.1 port; "UI ready" is the first successful
GET /gradio_api/info, "first answer" is when a gradio_client call to the page's /ask API returns, both measured
from the launch. `qa serve` is launched twice (a first launch, then a restart); `qa ask` runs after both. Memory: VmHWM (peak resident set) of the server process from /proc, read after the answers;
xllamacpp runs inside that process, so it includes the model.
Import times come from `python -X importtime` (self and cumulative microseconds per module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import ARTICLE, ROOT, log, proc_status_kb, qa_command
from index.settings import Settings
from tests.servers import free_port, launch, stop_process

TARGETS_S = {"ui_ready": 20.0, "first_answer": 25.0}
TARGET_PEAK_RSS_MB = 1536
QUESTION = "Who co-chaired the strategic dialogue on the Pakistani side?"
HEAVY = ("torch", "transformers", "sentence_transformers", "xllamacpp", "gradio", "chromadb")


def prepare(base: Settings) -> dict[str, str]:
    """The environment of a prepared install: seeds, built index, assembled model (all untimed)."""
    import shutil

    data = (Path(base.data_dir) / "bench-coldstart").resolve()
    seeds = data / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTICLE, seeds / ARTICLE.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "GRADIO_"))}
    env.update(
        QA_SEEDS_DIR=str(seeds),
        QA_DATA_DIR=str(data),
        QA_LLM="local",
        GRADIO_TEMP_DIR=str(data / "gradio"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    done = subprocess.run(
        qa_command("index", "build", "--json"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"`qa index build` failed: {done.stderr[-2000:]}")
    from qa.model_file import ensure_model_file

    ensure_model_file(base.model_copy(update={"data_dir": data}))
    return env


class Sampler:
    """Polls VmRSS of a process every `every` s (VmHWM is the kernel's own peak; this adds a timeline)."""

    def __init__(self, pid: int, every: float = 0.25):
        self.pid, self.every, self.samples = pid, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.perf_counter()
        while not self._stop.wait(self.every):
            kb = proc_status_kb("VmRSS", self.pid)
            if kb is None:
                return
            self.samples.append((round(time.perf_counter() - t0, 2), round(kb / 1024, 1)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def serve_session(env: dict[str, str], questions: list[str], timeout: float = 300) -> dict:
    """Launch `qa serve`, time UI ready and each answer from launch, read the server's peak RSS, stop it."""
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = launch(qa_command("serve", "--port", str(port)), env, out)
        try:
            with Sampler(proc.pid) as sampler:
                ready = None
                while ready is None:
                    if proc.poll() is not None:
                        out.seek(0)
                        raise RuntimeError(f"`qa serve` exited with {proc.returncode}: {out.read()[-2000:]}")
                    if time.perf_counter() - t0 > timeout:
                        raise RuntimeError(f"`qa serve` not ready after {timeout:.0f} s")
                    try:
                        with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                            ready = time.perf_counter() - t0
                    except (urllib.error.URLError, OSError):
                        time.sleep(0.1)
                client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
                answers = []
                for q in questions:
                    asked = time.perf_counter()
                    got = client.submit(q, None, api_name="/ask").result(timeout=timeout)
                    answers.append(
                        {
                            "question": q,
                            "answered_at_s": round(time.perf_counter() - t0, 2),
                            "seconds": round(time.perf_counter() - asked, 2),
                            "answer": (got or {}).get("answer", "")[:200] if isinstance(got, dict) else str(got)[:200],
                        }
                    )
                peak_kb, rss_kb = proc_status_kb("VmHWM", proc.pid), proc_status_kb("VmRSS", proc.pid)
        finally:
            stop_process(proc)
    return {
        "ui_ready_s": round(ready, 2),
        "first_answer_s": answers[0]["answered_at_s"] if answers else None,
        "answers": answers,
        "peak_rss_mb": round((peak_kb or 0) / 1024, 1),
        "rss_end_mb": round((rss_kb or 0) / 1024, 1),
        "rss_timeline_mb": sampler.samples[::4],
    }


def ask_once(env: dict[str, str], question: str = QUESTION) -> dict:
    """`qa ask QUESTION --json` in a new process, end to end, with its peak RSS (from the child's rusage)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(
        qa_command("ask", question, "--json"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"`qa ask` failed: {done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "seconds": round(seconds, 2),
        "answer": answer.get("answer", "")[:200],
        "chain_timings_ms": answer.get("timings_ms"),
        "peak_rss_mb": round(peak / 1024, 1) if peak > before else None,
    }


def parse_importtime(stderr: str) -> dict:
    """`-X importtime` lines -> total, top-level modules by cumulative time, and whether heavy packages loaded."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        self_us, cum_us, name = parts
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # one space, then two per nesting level
        rows.append((int(self_us), int(cum_us), name.strip(), depth))
    top = [(n, c) for s, c, n, d in rows if d == 0]
    loaded = {n for _, _, n, _ in rows}
    return {
        "total_ms": round(sum(c for _, c in top) / 1000, 1),
        "modules": len(rows),
        "top": [{"module": n, "cumulative_ms": round(c / 1000, 1)} for n, c in sorted(top, key=lambda x: -x[1])[:8]],
        "heavy_loaded": sorted(h for h in HEAVY if h in loaded),
    }


def import_times(env: dict[str, str]) -> dict:
    """Import breakdown and wall time of `qa --help`, `qa index status` and `qa ask`, each a new process."""
    out = {}
    for name, args in (
        ("qa --help", ["--help"]),
        ("qa index status", ["index", "status"]),
        ("qa ask", ["ask", QUESTION, "--json"]),
    ):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "ui.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"`{name}` failed: {done.stderr[-1500:]}")
        out[name] = {"wall_s_with_importtime": round(wall, 2), **parse_importtime(done.stderr)}
    return out


def run(base: Settings, args) -> dict:
    log("coldstart: preparing the bench data folder (index, model; not timed)")
    env = prepare(base)
    log("coldstart: qa serve -> first answer (first launch)")
    first = serve_session(env, [QUESTION])
    log(f"coldstart: UI ready {first['ui_ready_s']} s, first answer {first['first_answer_s']} s; now a restart")
    serve = serve_session(env, [QUESTION])  # a restart
    log(f"coldstart: UI ready {serve['ui_ready_s']} s, first answer {serve['first_answer_s']} s; now qa ask")
    ask = ask_once(env)
    log(f"coldstart: qa ask {ask['seconds']} s; now import times")
    imports = import_times(env)
    return {
        "serve": serve,
        "first_launch": first,
        "ask": ask,
        "imports": imports,
        "targets_s": TARGETS_S,
        "met": {
            "ui_ready": serve["ui_ready_s"] <= TARGETS_S["ui_ready"],
            "first_answer": (serve["first_answer_s"] or 1e9) <= TARGETS_S["first_answer"],
            "status_without_torch": "torch" not in imports["qa index status"]["heavy_loaded"],
            "help_without_torch": "torch" not in imports["qa --help"]["heavy_loaded"],
        },
    }


def run_memory(base: Settings, args) -> dict:
    from bench.answer import questions

    env = prepare(base)
    qs = questions(max(1, args.questions))
    log(f"memory: qa serve answering {len(qs)} questions")
    serve = serve_session(env, qs)
    return {
        "serve": serve,
        "questions": len(qs),
        "target_peak_rss_mb": TARGET_PEAK_RSS_MB,
        "met": {"peak_rss": serve["peak_rss_mb"] <= TARGET_PEAK_RSS_MB},
    }


def render(result: dict, console) -> None:
    s, a = result["serve"], result["ask"]
    f = result.get("first_launch")
    if f:
        console.print(
            f"qa serve, first launch (documents processed, then saved): UI ready {f['ui_ready_s']} s, "
            f"first answer {f['first_answer_s']} s after launch"
        )
    console.print(
        f"qa serve: UI ready {s['ui_ready_s']} s (target <= {TARGETS_S['ui_ready']}), first answer "
        f"{s['first_answer_s']} s after launch (target <= {TARGETS_S['first_answer']}); peak RSS "
        f"{s['peak_rss_mb']} MB"
    )
    console.print(f"qa ask (new process, end to end): {a['seconds']} s; chain {a['chain_timings_ms']}")
    for name, imp in result["imports"].items():
        top = ", ".join(f"{t['module']} {t['cumulative_ms']:.0f}" for t in imp["top"][:5])
        console.print(
            f"{name}: imports {imp['total_ms']:.0f} ms ({imp['modules']} modules); heavy: "
            f"{imp['heavy_loaded'] or 'none'}; top: {top}"
        )
    console.print(f"met: {result['met']}")


def render_memory(result: dict, console) -> None:
    s = result["serve"]
    console.print(
        f"qa serve with {result['questions']} answers: peak RSS (VmHWM) {s['peak_rss_mb']} MB, at the end "
        f"{s['rss_end_mb']} MB (target <= {result['target_peak_rss_mb']} MB): "
        f"{'met' if result['met']['peak_rss'] else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    return main_for("coldstart", __doc__, lambda p: None, run, render, argv)


def memory_main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--questions", type=int, default=5, help="answers to serve while sampling memory")

    return main_for("memory", __doc__, add_args, run_memory, render_memory, argv)


__all__ = [
    "Sampler",
    "ask_once",
    "import_times",
    "main",
    "memory_main",
    "parse_importtime",
    "prepare",
    "run",
    "run_memory",
    "serve_session",
]
