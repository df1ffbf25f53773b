"""Answer latency of the `local` backend through QAService: time to first token (TTFT) and total, p50/p95, on the
article question set, with and without llama.cpp's prompt cache, and generation tokens/s against the model's raw
decode speed measured in the same run (the decode scenario of bench/llm_speed.py, same loaded model).

    python -m bench answer [--json] [--questions 15] [--rounds 1]

"Without cache" sends `cache_prompt: false`, so llama.cpp processes the whole prompt (the reader's instructions
and example, the numbered sentences, the question); "with cache" is what the app does (`cache_prompt: true`): the fixed prefix is reused from
the slot. The two are interleaved question by question and never ask the same question back to back, so a
cached call can reuse only what a real next question could (the fixed prefix), not its own earlier prompt.
TTFT is wall-clock from `QAService.stream()` to the first model token (retrieval included); total is to the
final, cited Answer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, article_seeds, columns_table, isolated, latency, log
from index.settings import Settings

EVAL = ROOT / "bench" / "data" / "article_eval.json"
TARGETS_MS = {"ttft_p50": 1000.0, "total_p50": 3000.0}


def questions(n: int) -> list[str]:
    items = json.loads(EVAL.read_text(encoding="utf-8"))["answerable"]
    return [i["question"] for i in items[:n]]


def schedule(n: int, rounds: int) -> list[tuple[str, int]]:
    """(variant, question index) pairs in rotation: "cached" (the app: the fixed instructions from the prompt
    cache) and "uncached" (the whole prompt processed). After cached(i) comes uncached(i + n//2), so no call
    directly follows one with the same question."""
    if n < 4:
        raise ValueError("need at least 4 questions to interleave without repeats")
    order = []
    for _ in range(rounds):
        for i in range(n):
            order += [("cached", i), ("uncached", (i + n // 2) % n)]
    return order


def recorded_model(settings: Settings):
    """The app's local chat model, with a switch for cache_prompt and a record of llama.cpp's timings per call."""
    from qa.llm import LocalChatModel, get_chat_model

    class Recorded(LocalChatModel):
        prompt_cache: bool = True
        calls: list = []

        def _request(self, messages, stop, stream, **kwargs):
            return {**super()._request(messages, stop, stream, **kwargs), "cache_prompt": self.prompt_cache}

        def _stream(self, *args, **kwargs):
            for chunk in super()._stream(*args, **kwargs):
                timings = (chunk.message.response_metadata or {}).get("timings")
                if timings:
                    self.calls.append(dict(timings))
                yield chunk

    from langchain_core.language_models import BaseChatModel

    base = get_chat_model(settings)  # same fields, so the same process-wide llama.cpp server
    own = set(LocalChatModel.model_fields) - set(BaseChatModel.model_fields)
    return Recorded(**{name: getattr(base, name) for name in own})


def ask_timed(service, question: str) -> dict:
    started = time.perf_counter()
    first = None
    answer = None
    for event in service.stream(question):
        if event.kind == "token" and first is None:
            first = time.perf_counter()
        elif event.kind == "answer":
            answer = event.answer
    end = time.perf_counter()
    return {
        "ttft_ms": 1000 * ((first or end) - started),
        "total_ms": 1000 * (end - started),
        "abstained": answer.abstained if answer else None,
        "chain_ms": answer.timings_ms if answer else None,
    }


def summarize(runs: list[dict]) -> dict:
    llama = [r["llama"] for r in runs if r.get("llama")]
    decode = [t["predicted_per_second"] for t in llama if t.get("predicted_n", 0) >= 8]
    return {
        "ttft": latency([r["ttft_ms"] for r in runs]),
        "total": latency([r["total_ms"] for r in runs]),
        "prompt_tokens_p50": latency([t.get("prompt_n", 0) for t in llama])["p50_ms"],
        "cached_tokens_p50": latency([t.get("cache_n", 0) for t in llama])["p50_ms"],
        "generated_tokens_p50": latency([t.get("predicted_n", 0) for t in llama])["p50_ms"],
        "gen_tok_s_p50": latency(decode)["p50_ms"] if decode else None,
        "prefill_ms_p50": latency([t.get("prompt_ms", 0) for t in llama])["p50_ms"],
        "prefill_tok_s_p50": latency(
            [t["prompt_per_second"] for t in llama if t.get("prompt_n", 0) >= 8 and t.get("prompt_per_second")]
        )["p50_ms"],
    }


def run(base: Settings, n_questions: int = 15, rounds: int = 1) -> dict:
    from bench.llm_speed import _call, _decode
    from index.build import build_index
    from qa.service import QAService

    work = Path(tempfile.mkdtemp(prefix="qa-bench-answer-"))
    try:
        from qa.model_file import ensure_model_file

        # The GGUF is assembled once into the default data folder (a first-install cost, not an answer cost).
        settings = isolated(
            base, work, article_seeds(work / "seeds"), llm="local", llm_model_path=ensure_model_file(base)
        )
        build_index(settings, progress=False)
        service = QAService(settings)
        model = recorded_model(settings)
        t0 = time.perf_counter()
        model.load()
        service._llm, service._llm_loaded = model, True  # the service answers with the recorded model
        service.warm_up()
        load_s = time.perf_counter() - t0
        qs = questions(n_questions)
        ask_timed(service, "What is this article about?")  # first-call costs (page faults, graph build) excluded
        raw: list[dict] = []
        runs: dict[str, list[dict]] = {"cached": [], "uncached": []}
        order = schedule(len(qs), rounds)
        for step, (variant, i) in enumerate(order):
            if step % max(1, len(order) // 3) == 0:  # raw decode at the start, middle and end of the run
                model.prompt_cache = False
                raw.append(_call(model, *_decode(step)))
            model.prompt_cache = variant != "uncached"
            before = len(model.calls)
            got = ask_timed(service, qs[i])
            got["llama"] = model.calls[-1] if len(model.calls) > before else None
            got["question"] = i
            runs[variant].append(got)
            log(
                f"answer {step + 1}/{len(order)} {variant}: ttft {got['ttft_ms']:.0f} ms, total {got['total_ms']:.0f} ms"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw_decode = sorted(r["decode_tok_s"] for r in raw if r.get("decode_tok_s"))
    summary = {v: summarize(r) for v, r in runs.items()}
    raw_p50 = raw_decode[len(raw_decode) // 2] if raw_decode else None
    for s in summary.values():
        s["gen_vs_raw_decode"] = round(s["gen_tok_s_p50"] / raw_p50, 3) if raw_p50 and s["gen_tok_s_p50"] else None
    cached = summary["cached"]
    return {
        "questions": len(qs),
        "rounds": rounds,
        "model": Path(model.model_path).name,
        "load_s": round(load_s, 1),
        "max_tokens": settings.max_tokens,
        "read_sentences": settings.read_sentences,
        "raw_decode_tok_s": raw_decode,
        "raw_decode_tok_s_p50": raw_p50,
        "summary": summary,
        "cache_speedup_ttft_p50": round(summary["uncached"]["ttft"]["p50_ms"] / cached["ttft"]["p50_ms"], 2),
        "targets_ms": TARGETS_MS,
        "met": {
            "ttft_p50": cached["ttft"]["p50_ms"] <= TARGETS_MS["ttft_p50"],
            "total_p50": cached["total"]["p50_ms"] <= TARGETS_MS["total_p50"],
        },
        "runs": runs,
        "raw_decode_runs": raw,
    }


def render(result: dict, console) -> None:
    table = columns_table(
        (
            "prompt cache | TTFT p50 | TTFT p95 | total p50 | total p95 | prompt tok | "
            "cached tok | gen tok | gen tok/s | vs raw decode"
        ),
        left=("prompt cache",),
        title=f"Answers through QAService, local model {result['model']} ({result['questions']} article "
        f"questions x {result['rounds']}); raw decode p50 {result['raw_decode_tok_s_p50']} tok/s",
    )
    for variant, s in result["summary"].items():
        table.add_row(
            variant,
            f"{s['ttft']['p50_ms']:.0f}",
            f"{s['ttft']['p95_ms']:.0f}",
            f"{s['total']['p50_ms']:.0f}",
            f"{s['total']['p95_ms']:.0f}",
            f"{s['prompt_tokens_p50']:.0f}",
            f"{s['cached_tokens_p50']:.0f}",
            f"{s['generated_tokens_p50']:.0f}",
            str(s["gen_tok_s_p50"]),
            str(s["gen_vs_raw_decode"]),
        )
    console.print(table)
    console.print(
        f"Targets (with cache): TTFT p50 <= 1000 ms {'met' if result['met']['ttft_p50'] else 'NOT met'}; "
        f"total p50 <= 3000 ms {'met' if result['met']['total_p50'] else 'NOT met'}. "
        f"Cache speeds TTFT p50 up {result['cache_speedup_ttft_p50']}x."
    )


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--questions", type=int, default=15, help="first N answerable questions of article_eval.json")
        p.add_argument("--rounds", type=int, default=1)

    return main_for("answer", __doc__, add_args, lambda s, a: run(s, a.questions, max(1, a.rounds)), render, argv)


__all__ = ["TARGETS_MS", "ask_timed", "main", "questions", "recorded_model", "render", "run", "schedule", "summarize"]
