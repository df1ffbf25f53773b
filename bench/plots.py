"""Plots of the saved results (bench/results/*.json) as PNGs in docs/bench/.

    python -m bench plots

scale.png: retrieval latency p50/p95 against corpus size, hybrid and dense (the 100k estimate dashed, if any);
ingest.png: chunks/s of our build, the raw encoder and the tutorial pipeline;
answer.png: TTFT and total p50/p95 with and without the prompt cache;
search-scale.png: search latency without query encoding up to 1M chunks (hybrid and its parts, BM25 alone; the
hybrid p50 through a Chroma server too when bench/results/search-scale-server.json exists).
A plot whose results file is missing is skipped with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import RESULTS, ROOT

OUT = ROOT / "docs" / "bench"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(7, 4.2), dpi=110)


def _save(plt, fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def scale_series(result: dict) -> dict[str, list[tuple[int, float, float]]]:
    """mode -> [(chunks, p50_ms, p95_ms)] sorted by corpus size."""
    series = {}
    for mode in result["modes"]:
        series[mode] = sorted(
            (r["chunks"], r["latency"][mode]["p50_ms"], r["latency"][mode]["p95_ms"]) for r in result["rows"]
        )
    return series


def plot_scale(result: dict, out: Path) -> Path:
    plt, fig, ax = _figure()
    for mode, points in scale_series(result).items():
        xs = [p[0] for p in points]
        (line,) = ax.plot(xs, [p[1] for p in points], marker="o", label=f"{mode} p50")
        ax.plot(xs, [p[2] for p in points], marker="x", linestyle=":", color=line.get_color(), label=f"{mode} p95")
        est = result.get("extrapolated_100k") or {}
        if (est.get(f"{mode}_p50_ms") or 0) > 0:  # a negative line means the sizes did not order the noise
            ax.plot(
                [xs[-1], est["chunks"]],
                [points[-1][1], est[f"{mode}_p50_ms"]],
                linestyle="--",
                color=line.get_color(),
                alpha=0.5,
                label=f"{mode} p50, linear estimate (not measured)",
            )
    search = _load("scale_search_only")
    for key, label in (("hybrid_search_p50_ms", "hybrid search only p50"), ("dense_search", "dense search only p50")):
        if search:
            ys = [r[key] if isinstance(r[key], float) else r[key]["p50_ms"] for r in search]
            ax.plot([r["chunks"] for r in search], ys, marker="s", linestyle="-.", label=f"{label} (synthetic vectors)")
    ax.set_yscale("log")
    ax.axhline(50, color="grey", linewidth=0.8)
    ax.text(0.01, 50, " target at 100k: 50 ms", color="grey", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the index (log)")
    ax.set_ylabel("ms per query (log; circles: query encoding included)")
    ax.set_title(f"Retrieval latency vs corpus size ({result['machine']['cpus']} cores, shared)")
    ax.legend(fontsize=7)
    return _save(plt, fig, out)


def plot_ingest(result: dict, out: Path) -> Path:
    plt, fig, ax = _figure()
    o, t = result["ours"], result["tutorial"]
    names = ["raw encode()", "build_index", "tutorial\n(1000/200 + Chroma)"]
    rates = [o["encoder_chunks_per_s"], o["build_chunks_per_s"], t["chunks"] / t["seconds"]]
    chars = [
        result["corpus_chars"] / (o["chunks"] / o["encoder_chunks_per_s"]),
        result["corpus_chars"] / o["full_build_s"],
        result["corpus_chars"] / t["seconds"],
    ]
    bars = ax.bar(names, rates, color=["#999", "#2a7", "#c63"])
    for bar, c in zip(bars, chars):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{c / 1000:.1f}k corpus chars/s",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("chunks/s (best of interleaved rounds)")
    ax.set_title(f"Ingest of {result['articles']} SQuAD train articles ({result['machine']['cpus']} cores, shared)")
    return _save(plt, fig, out)


def plot_answer(result: dict, out: Path) -> Path:
    plt, fig, ax = _figure()
    variants = list(result["summary"])
    width = 0.2
    for j, (metric, q) in enumerate((("ttft", "p50_ms"), ("ttft", "p95_ms"), ("total", "p50_ms"), ("total", "p95_ms"))):
        vals = [result["summary"][v][metric][q] / 1000 for v in variants]
        ax.bar([i + (j - 1.5) * width for i in range(len(variants))], vals, width, label=f"{metric} {q[:3]}")
    labels = {
        "cached": "documents mode,\nprompt cache (app)",
        "passages": "passages mode,\nprompt cache",
        "uncached": "documents mode,\nno prompt cache",
    }
    ax.set_xticks(range(len(variants)), [labels.get(v, v) for v in variants], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.axhline(3.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_ylabel("seconds (targets: TTFT p50 1 s, total p50 3 s)")
    ax.set_title(f"Answers through QAService, {result['model']} ({result['machine']['cpus']} cores)")
    ax.legend(fontsize=8)
    return _save(plt, fig, out)


def plot_search_scale(result: dict, out: Path, server: dict | None = None) -> Path:
    """Search latency without query encoding: the full hybrid path and its parts (up to the sizes Chroma was filled
    to), and BM25 alone with top-k selection and with a full sort, up to 1M chunks; with `server` (the
    `search-scale-server` results), its hybrid p50 through a Chroma server as well."""
    plt, fig, ax = _figure()
    rows = sorted(result["rows"], key=lambda r: r["chunks"])
    if server and server.get("rows"):
        far = sorted(server["rows"], key=lambda r: r["chunks"])
        ax.plot(
            [r["chunks"] for r in far],
            [r["latency"]["hybrid"]["p50_ms"] for r in far],
            marker="D",
            linestyle="-.",
            color="tab:purple",
            label="hybrid p50, Chroma server",
        )
    for part, marker in (("hybrid", "o"), ("dense", "s"), ("bm25", "^")):
        xs = [r["chunks"] for r in rows]
        (line,) = ax.plot(xs, [r["latency"][part]["p50_ms"] for r in rows], marker=marker, label=f"{part} p50")
        ax.plot(
            xs,
            [r["latency"][part]["p95_ms"] for r in rows],
            marker=marker,
            linestyle=":",
            color=line.get_color(),
            alpha=0.6,
            label=f"{part} p95",
        )
    bm = sorted(result.get("bm25_rows") or [], key=lambda r: r["chunks"])
    for key, label, style in (
        ("top_k", "BM25 alone, top-k selection p50", "-"),
        ("sort", "BM25 alone, full sort (before) p50", "--"),
    ):
        if bm:
            ax.plot(
                [r["chunks"] for r in bm],
                [r["search"][key]["p50_ms"] for r in bm],
                marker="x",
                linestyle=style,
                color="grey" if key == "sort" else "black",
                label=label,
            )
    from bench.search_scale import estimate

    est = estimate(result)
    if est:
        last = rows[-1]
        for key, style in (("hybrid_p50_ms_log", "--"), ("hybrid_p50_ms_linear", ":")):
            ax.plot(
                [last["chunks"], est["chunks"]],
                [last["latency"]["hybrid"]["p50_ms"], est[key]],
                linestyle=style,
                marker="o",
                color="tab:blue",
                alpha=0.5,
                label=f"hybrid p50 estimate, dense {key.rsplit('_', 1)[1]} (not measured)",
            )
    target = result.get("target_1m_hybrid_p50_ms")
    if target:
        ax.axhline(target, color="grey", linewidth=0.8)
        ax.text(
            0.01,
            target,
            f" target at 1M: hybrid p50 {target:.0f} ms",
            color="grey",
            fontsize=8,
            transform=ax.get_yaxis_transform(),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks in the index (log)")
    ax.set_ylabel("ms per query, query encoding excluded (log)")
    where = "Chroma server" if result.get("server") else "embedded Chroma"
    where += " + server" if server and server.get("rows") else ""
    ax.set_title(f"Search latency vs index size ({where}, {result['machine']['cpus']} shared cores)")
    ax.legend(fontsize=7)
    return _save(plt, fig, out)


PLOTS = {"scale": plot_scale, "ingest": plot_ingest, "answer": plot_answer, "search-scale": plot_search_scale}


def main(argv: list[str] | None = None) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, plot in PLOTS.items():
        result = _load(name)
        if result is None:
            print(f"skipped {name}.png: no bench/results/{name}.json (run `python -m bench {name}`)", file=sys.stderr)
            continue
        extra = {"server": _load("search-scale-server")} if name == "search-scale" else {}
        print(plot(result, OUT / f"{name}.png", **extra).relative_to(ROOT))
    return 0


__all__ = ["main", "plot_answer", "plot_ingest", "plot_scale", "plot_search_scale", "scale_series"]
