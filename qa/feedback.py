"""Thumbs up/down on answers, appended as one JSON line each to the feedback log in the data folder.

The log holds people's questions, so its folder and file are created readable by their owner only.
Each record is written with a single append, under a lock, so concurrent votes never interleave.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from index.settings import Settings

_lock = threading.Lock()
log = logging.getLogger(__name__)

MAX_LOG_BYTES = 20 * 1024 * 1024  # a full log takes no more votes (logged): votes never fill the disk
MAX_ANSWER_CHARS = 20_000  # answers are a few hundred characters; these caps bound one line
MAX_CITATIONS = 32
MAX_QUOTE_CHARS = 2_000


def record_feedback(
    settings: Settings,
    *,
    liked: bool,
    question: str,
    answer: str,
    citations: list[dict] | None = None,
    abstained: bool | None = None,
) -> Path | None:
    """Append one vote to settings.feedback_path and return that path; None when the log is full.

    Every field is cut to a bound (the question to the longest a question may be), so one line stays small."""
    path = Path(settings.feedback_path)
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rating": "up" if liked else "down",
        "question": str(question)[: settings.max_query_chars],
        "answer": str(answer)[:MAX_ANSWER_CHARS],
        "citations": [_bounded(c) for c in (citations or [])[:MAX_CITATIONS]],
        "abstained": abstained,
        "llm": settings.llm,
    }
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _lock:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
            os.chmod(path.parent, 0o700)  # mkdir's mode is narrowed by the umask, never widened
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            if os.fstat(fd).st_size + len(line) > MAX_LOG_BYTES:
                log.warning(
                    "the feedback log %s is full (%d MB); this vote was not saved", path, MAX_LOG_BYTES // 1048576
                )
                return None
            os.write(fd, line)
        finally:
            os.close(fd)
    return path


def _bounded(citation) -> dict:
    if not isinstance(citation, dict):
        return {}
    return {k: (v[:MAX_QUOTE_CHARS] if isinstance(v, str) else v) for k, v in list(citation.items())[:10]}


def read_feedback(settings: Settings) -> list[dict]:
    """All recorded votes, oldest first (for reports and tests)."""
    path = Path(settings.feedback_path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["record_feedback", "read_feedback"]
