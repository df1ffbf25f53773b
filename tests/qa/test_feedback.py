"""Feedback log: one JSON line per vote, user-only permissions, safe under concurrent votes."""

from __future__ import annotations

import json
import stat
import threading

from qa.feedback import read_feedback, record_feedback


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_votes_are_appended_as_json_lines(settings):
    cites = [{"n": 1, "source": "a.txt", "chunk_id": "c1", "start": 10, "end": 40, "quote": "Dar met Wang Yi."}]
    path = record_feedback(
        settings, liked=True, question="Who met?", answer="Dar met Wang Yi [1].", citations=cites, abstained=False
    )
    record_feedback(settings, liked=False, question="<script>x</script>", answer="I don't know.", abstained=True)
    assert path == settings.feedback_path
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["rating"] == "up" and first["question"] == "Who met?" and first["citations"] == cites
    assert second["rating"] == "down" and second["question"] == "<script>x</script>" and second["abstained"]
    assert first["time"].endswith("+00:00")
    assert read_feedback(settings) == [first, second]


def test_data_folder_and_log_are_private(settings):
    assert not settings.data_dir.exists()
    record_feedback(settings, liked=True, question="q", answer="a")
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.feedback_path) == 0o600


def test_an_existing_world_readable_log_is_narrowed(settings):
    settings.data_dir.mkdir(mode=0o700)
    settings.feedback_path.write_text("")
    settings.feedback_path.chmod(0o644)
    record_feedback(settings, liked=False, question="q", answer="a")
    assert mode(settings.feedback_path) == 0o600


def test_concurrent_votes_never_interleave(settings):
    answer = "x" * 20000  # long lines would interleave if written in pieces

    def vote(i: int) -> None:
        for _ in range(10):
            record_feedback(settings, liked=bool(i % 2), question=f"q{i}", answer=answer)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    records = read_feedback(settings)
    assert len(records) == 80
    assert all(r["answer"] == answer for r in records)


def test_a_vote_is_bounded_and_the_log_stops_at_its_size_limit(settings):
    """A 5 MB question cannot make a 5 MB line, and a full log takes no more votes (the disk never fills)."""
    from qa.feedback import MAX_LOG_BYTES

    cites = [{"n": i, "quote": "q" * 10_000} for i in range(500)]
    path = record_feedback(settings, liked=True, question="x" * 5_000_000, answer="y" * 5_000_000, citations=cites)
    line = path.read_bytes()
    assert len(line) < 200_000
    vote = read_feedback(settings)[0]
    assert vote["question"] == "x" * settings.max_query_chars and len(vote["citations"]) <= 32
    with path.open("r+b") as f:
        f.truncate(MAX_LOG_BYTES)  # sparse: a full log without writing 20 MB
    assert record_feedback(settings, liked=False, question="q", answer="a") is None
    assert path.stat().st_size == MAX_LOG_BYTES
