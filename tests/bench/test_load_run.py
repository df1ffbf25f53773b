"""bench/load.py at a small size (4 sessions x 2 questions) against the real server and the real local model:
no errors, and every answer is its own question's and as good as when the question is asked alone."""

from __future__ import annotations

import json

import pytest

from bench.load import run_load
from tests.servers import ANSWER_SECONDS, ARTIFACTS

pytestmark = pytest.mark.slow


def test_concurrent_sessions_get_their_own_answers_as_good_as_alone(live_server):
    report = run_load(live_server.url, sessions=4, questions=2, answer_timeout=ANSWER_SECONDS, timeout=1200)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-4x2.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))

    assert (report["requests"], report["answered"]) == (8, 8), report["problems"]
    assert report["errors"] == 0 and report["alone_errors"] == 0, report["problems"]
    assert report["mixed"] == 0, report["problems"]
    assert report["incorrect_vs_alone"] == 0 and report["uncited_vs_alone"] == 0, report["problems"]
    assert report["ok"]
    # The comparison means something: four different questions ran side by side, and some were right alone.
    assert [q["load"]["asked"] for q in report["per_question"]] == [2, 2, 2, 2]
    assert report["alone_correct"] >= 1 and report["alone_cited"] >= 2
    assert report["latency_s"]["p50"] > 0 and report["throughput_answers_per_s"] > 0
