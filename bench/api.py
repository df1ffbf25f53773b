"""The OpenAI-compatible API under `qa serve`: first token beside the page's, and many streaming clients at once.

    python -m bench api [--llm local|extractive] [--questions 5] [--clients 16] [--per-client 5] [--url URL] [--json]

Without --url it builds the article's index in a temporary folder and starts `qa serve` on a free port (QA_*
variables apply; --llm overrides QA_LLM), and stops it at the end.

1. Side by side: each question is asked through the page (gradio_client, the /chat endpoint the page streams
   from) and through POST /v1/chat/completions with "stream": true, one after the other, alternating which goes
   first. For each it records the time to the page's first token (the first output whose answer bubble holds
   text), the API's first streamed token (the first non-empty delta: the model's draft, `reasoning_content`),
   the API's first token of the checked answer (`content`) and the total. Target: API first token within 0.2 s
   of the page's.
2. Load: --clients concurrent streaming clients (threads, httpx) x --per-client questions each; client i asks
   question (i + j) mod P at step j. Each answer is compared with the same question asked alone through the API:
   errors (HTTP errors, error events, no [DONE], content not equal to the checked answer in the last chunk's
   passages/citations) and mixed answers (another question's alone answer, or citations of another question's)
   are counted. Target: 0 errors, 0 mixed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from bench.common import article_seeds, envelope, save

_TAG = re.compile(r"<[^>]+>")


def _questions(n: int) -> list[str]:
    from bench.load import load_items

    return [item.question for item in load_items()][:n]


def stream_api(base: str, question: str, key: str | None = None, timeout: float = 300) -> dict:
    """One streamed answer through /v1/chat/completions, timed from the request."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "grounded-qa", "stream": True, "messages": [{"role": "user", "content": question}]}
    out = {
        "question": question,
        "first_token_s": None,
        "first_content_s": None,
        "total_s": None,
        "content": "",
        "draft": "",
        "citations": None,
        "passages": None,
        "abstained": None,
        "error": None,
    }
    started = time.perf_counter()
    done = False
    try:
        with httpx.stream("POST", base + "/chat/completions", json=body, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                out["error"] = f"HTTP {r.status_code}: {r.text[:200]}"
                return out
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    out["error"] = chunk["error"]["message"]
                    break
                delta = chunk["choices"][0]["delta"]
                now = time.perf_counter() - started
                text = (delta.get("reasoning_content") or "") + (delta.get("content") or "")
                if text and out["first_token_s"] is None:
                    out["first_token_s"] = now
                if delta.get("content") and out["first_content_s"] is None:
                    out["first_content_s"] = now
                out["draft"] += delta.get("reasoning_content") or ""
                out["content"] += delta.get("content") or ""
                if chunk["choices"][0]["finish_reason"] == "stop":
                    out["citations"] = [(c["source"], c["start"], c["end"]) for c in chunk["citations"]]
                    out["abstained"] = chunk["abstained"]
                    out["passages"] = [(p["source"], p["start"], p["end"]) for p in chunk["passages"]]
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["total_s"] = time.perf_counter() - started
    if out["error"] is None and not done:
        out["error"] = "the stream ended without [DONE]"
    elif out["error"] is None and out["citations"] is None:
        out["error"] = "no final chunk with citations"
    return out


def page_client(url: str, auth=None):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False, download_files=False, analytics_enabled=False)


def stream_page(client, question: str, timeout: float = 300) -> dict:
    """One answer through the page's /chat endpoint (a new chat), timed to its first token and its end."""
    client.reset_session()
    out = {"question": question, "first_token_s": None, "total_s": None, "error": None}
    started = time.perf_counter()
    job = client.submit(question, [], api_name="/chat")
    seen = 0
    while True:
        outputs = job.outputs()
        for chat, _sources in outputs[seen:]:
            if out["first_token_s"] is None and chat and chat[-1].get("role") == "assistant":
                content = chat[-1].get("content")
                text = (
                    content
                    if isinstance(content, str)
                    else " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
                )
                if html.unescape(_TAG.sub("", text)).replace("▍", "").strip():
                    out["first_token_s"] = time.perf_counter() - started
        seen = len(outputs)
        if job.done():
            break
        if time.perf_counter() - started > timeout:
            out["error"] = "timeout"
            job.cancel()
            break
        time.sleep(0.005)
    out["total_s"] = time.perf_counter() - started
    try:
        job.result(timeout=5)
    except Exception as exc:  # noqa: BLE001
        out["error"] = out["error"] or f"{type(exc).__name__}: {exc}"
    return out


def side_by_side(url: str, questions: list[str], key: str | None, auth=None) -> dict:
    """Each question once through each door, never the same question twice in a row: round r asks question i
    through the page when (i + r) is even, else through the API. (Asked back to back, the second asking of a
    question would find its whole prompt in the model's cache and look faster whichever door it came through.)"""
    base = url.rstrip("/") + "/v1"
    client = page_client(url, auth)
    stream_page(client, questions[-1])  # the client's first job opens its connection: not part of the figures
    page: dict[str, dict] = {}
    api: dict[str, dict] = {}
    for r in range(2):
        for i, q in enumerate(questions):
            if (i + r) % 2 == 0:
                page[q] = stream_page(client, q)
            else:
                api[q] = stream_api(base, q, key)
    rows = []
    for q in questions:
        p, a = page[q], api[q]
        gap = (
            a["first_token_s"] - p["first_token_s"]
            if a["first_token_s"] is not None and p["first_token_s"] is not None
            else None
        )
        rows.append(
            {
                "question": q,
                "page_first_token_s": p["first_token_s"],
                "page_total_s": p["total_s"],
                "api_first_token_s": a["first_token_s"],
                "api_first_content_s": a["first_content_s"],
                "api_total_s": a["total_s"],
                "gap_s": gap,
                "errors": [e for e in (p["error"], a["error"]) if e],
            }
        )

    def med(key_: str):
        values = [r[key_] for r in rows if r[key_] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "rows": rows,
        "page_first_token_p50_s": med("page_first_token_s"),
        "api_first_token_p50_s": med("api_first_token_s"),
        "api_first_content_p50_s": med("api_first_content_s"),
        "page_total_p50_s": med("page_total_s"),
        "api_total_p50_s": med("api_total_s"),
        "gap_p50_s": med("gap_s"),
        "gap_max_s": max((round(r["gap_s"], 3) for r in rows if r["gap_s"] is not None), default=None),
    }


def classify(results: list[dict], alone: dict[str, dict]) -> tuple[int, int, int, list[dict]]:
    """(errors, mixed, differing, problems) of answers under load against each question's alone answer."""
    errors = mixed = differs = 0
    problems = []
    for r in results:
        ref = alone[r["question"]]
        if r["error"]:
            errors += 1
            problems.append({"question": r["question"], "error": r["error"]})
            continue
        # Retrieval is deterministic: passages other than its own alone run mean another request's data came back.
        # Else, being word for word another question's alone answer (one whose passages differ) is mixed too;
        # two questions may share one correct answer, so only a difference from its own reference counts.
        other = None
        if r["passages"] != ref["passages"]:
            other = next((q for q, a in alone.items() if a["passages"] == r["passages"]), "an unknown question")
        elif r["content"] != ref["content"]:
            other = next(
                (
                    q
                    for q, a in alone.items()
                    if q != r["question"] and a["content"] == r["content"] and a["passages"] != ref["passages"]
                ),
                None,
            )
            if other is None:
                differs += 1  # not another question's answer, but not word for word its alone answer either
                problems.append({"question": r["question"], "differs": r["content"][:200]})
        if other is not None:
            mixed += 1
            problems.append({"question": r["question"], "mixed_with": other, "content": r["content"][:200]})
    return errors, mixed, differs, problems


def load(url: str, questions: list[str], clients: int, per_client: int, key: str | None) -> dict:
    base = url.rstrip("/") + "/v1"
    pool = questions[: max(1, min(clients, len(questions)))]
    alone = {q: stream_api(base, q, key) for q in pool}
    results: list[dict] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        barrier.wait(60)
        for j in range(per_client):
            q = pool[(i + j) % len(pool)]
            r = stream_api(base, q, key)
            with lock:
                results.append(r)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    wall = time.perf_counter() - began
    errors, mixed, differs, problems = classify(results, alone)
    totals = [r["total_s"] for r in results if not r["error"]]
    firsts = [r["first_token_s"] for r in results if not r["error"] and r["first_token_s"] is not None]
    return {
        "clients": clients,
        "per_client": per_client,
        "requests": len(results),
        "expected": clients * per_client,
        "errors": errors + (clients * per_client - len(results)),
        "mixed": mixed,
        "differs_from_alone": differs,
        "alone_errors": sum(1 for a in alone.values() if a["error"]),
        "first_token_p50_s": round(statistics.median(firsts), 3) if firsts else None,
        "total_p50_s": round(statistics.median(totals), 3) if totals else None,
        "total_max_s": round(max(totals), 3) if totals else None,
        "wall_s": round(wall, 2),
        "answers_per_s": round(len(totals) / wall, 3) if wall else None,
        "problems": problems[:20],
    }


def render(result: dict, console) -> None:
    s, l = result["side_by_side"], result["load"]
    if s is not None:
        _render_side(s, result["llm"], console)
    if l is not None:
        _render_load(l, console)


def _render_side(s: dict, llm: str, console) -> None:
    console.print(
        f"[bold]Side by side[/] ({len(s['rows'])} questions, backend {llm}): first token p50 "
        f"page {s['page_first_token_p50_s']} s, API {s['api_first_token_p50_s']} s (gap p50 "
        f"{s['gap_p50_s']} s, max {s['gap_max_s']} s); API first checked-answer token p50 "
        f"{s['api_first_content_p50_s']} s; total p50 page {s['page_total_p50_s']} s, API "
        f"{s['api_total_p50_s']} s"
    )
    for r in s["rows"]:
        console.print(
            f"  page {r['page_first_token_s'] and round(r['page_first_token_s'], 3)} s | API "
            f"{r['api_first_token_s'] and round(r['api_first_token_s'], 3)} s (content "
            f"{r['api_first_content_s'] and round(r['api_first_content_s'], 3)} s)  {r['question']}"
            f"{'  ERR ' + '; '.join(r['errors']) if r['errors'] else ''}",
            markup=False,
        )


def _render_load(l: dict, console) -> None:
    console.print(
        f"[bold]Load[/]: {l['clients']} streaming clients x {l['per_client']}: {l['requests']}/"
        f"{l['expected']} answered, errors {l['errors']}, mixed {l['mixed']}, differing from alone "
        f"{l['differs_from_alone']}; first token p50 {l['first_token_p50_s']} s, total p50 "
        f"{l['total_p50_s']} s (max {l['total_max_s']} s), {l['answers_per_s']} answers/s over "
        f"{l['wall_s']} s"
    )
    for p in l["problems"]:
        console.print(f"  {p}", markup=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", choices=["local", "openai", "extractive"], help="QA_LLM for the started server")
    parser.add_argument("--url", help="a running `qa serve` (default: start one over the article)")
    parser.add_argument("--questions", type=int, default=6, help="questions for the side-by-side run (at least 4)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--only", choices=["side", "load"], help="run one of the two parts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.clients, args.per_client) < 1 or args.questions < 4:
        parser.error("--clients and --per-client must be at least 1, --questions at least 4")
    from rich.console import Console

    from bench.load import qa_server

    console = Console(stderr=args.json)
    log = lambda msg: Console(stderr=True).print(f"[dim]{msg}[/dim]")
    key = os.environ.get("QA_API_KEY")
    questions = _questions(max(args.questions, min(args.clients, 16)))
    with tempfile.TemporaryDirectory(prefix="qa-bench-api-") as tmp:
        kept = {
            k: v for k, v in os.environ.items() if not k.startswith("QA_") or k.startswith(("QA_LLM", "QA_API_KEY"))
        }
        env = {
            **kept,
            "QA_SEEDS_DIR": str(article_seeds(Path(tmp) / "seeds")),
            "QA_DATA_DIR": str(Path(tmp) / "data"),
            **({"QA_LLM": args.llm} if args.llm else {}),
        }
        try:
            with nullcontext(args.url) if args.url else qa_server(env, log) as url:
                log("warming up (one answer) ...")
                stream_api(url.rstrip("/") + "/v1", questions[0], key)
                side = loaded = None
                if args.only != "load":
                    log(f"side by side: {args.questions} questions through the page and the API ...")
                    side = side_by_side(url, questions[: args.questions], key)
                if args.only != "side":
                    log(f"load: {args.clients} streaming clients x {args.per_client} questions ...")
                    loaded = load(url, questions, args.clients, args.per_client, key)
        except RuntimeError as exc:
            Console(stderr=True).print(f"[red]Error:[/] {exc}", markup=True, highlight=False)
            return 2
    llm = args.llm or os.environ.get("QA_LLM", "local")
    result = envelope("api", argv, {"llm": llm, "side_by_side": side, "load": loaded})
    result["targets"] = {"first_token_gap_s": 0.2, "errors": 0, "mixed": 0}
    side_ok = side is None or (side["gap_p50_s"] is not None and side["gap_p50_s"] <= 0.2)
    load_ok = loaded is None or not (loaded["errors"] or loaded["mixed"])
    result["ok"] = side_ok and load_ok
    path = save(result, f"api-{llm}" + (f"-{args.only}" if args.only else ""))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        render(result, console)
        console.print(f"Saved {path}")
    return 0 if load_ok else 1


if __name__ == "__main__":
    sys.exit(main())
