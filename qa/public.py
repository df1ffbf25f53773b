"""The public JSON objects every door returns, built in one place so the CLI, the MCP server and the HTTP API
give the identical object for the same input.

`qa ask --json` is `Answer.to_json()` (qa/types.py); `qa search --json` is `search_json` below.
"""

from __future__ import annotations

from qa.types import Passage


def search_results(passages: list[Passage]) -> list[dict]:
    """The `results` list of `qa search --json`: rank, source, chunk_id, start, end, score, text, page (PDF page
    where the passage starts, else null)."""
    return [
        {
            "rank": p.n,
            "source": p.source,
            "chunk_id": p.chunk_id,
            "start": p.start,
            "end": p.end,
            "score": round(float(p.score), 6),
            "text": p.text,
            "page": p.page,
        }
        for p in passages
    ]


def search_json(service, query: str, k: int = 5, mode: str | None = None) -> dict:
    """`{"query", "results"}` for one query through the service's retriever (QAError / IndexError_ on bad
    input or a missing index, with a message fit for the user)."""
    passages = service.retriever().retrieve(query, k, mode)
    return {"query": query, "results": search_results(passages)}


__all__ = ["search_json", "search_results"]
