"""Thumbs up/down on answers, appended as one JSON line each to the feedback log in the data folder.

The log holds people's questions, so its folder and file are created readable by their owner only.
Each record is written with a single append, under a lock, so concurrent votes never interleave.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from index.settings import Settings

_lock = threading.Lock()


def record_feedback(settings: Settings, *, liked: bool, question: str, answer: str,
                    citations: list[dict] | None = None, abstained: bool | None = None) -> Path:
    """Append one vote to settings.feedback_path and return that path."""
    path = Path(settings.feedback_path)
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rating": "up" if liked else "down",
        "question": question,
        "answer": answer,
        "citations": citations or [],
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
            os.write(fd, line)
        finally:
            os.close(fd)
    return path


def read_feedback(settings: Settings) -> list[dict]:
    """All recorded votes, oldest first (for reports and tests)."""
    path = Path(settings.feedback_path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["record_feedback", "read_feedback"]
