"""The summary: one row per (target, workload, shards, mode, memory size), as CSV and Markdown.

A *job* is one batch (one fan-out: every shard of the input, sent at once); its time to
result is the batch's makespan and its cost the sum of its invocations' costs.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from serverless_hpc import workloads
from serverless_hpc.report.data import JobKey, RowIndex, RowKey, row_key
from serverless_hpc.report.stats import median, median_ci, percentile

SUMMARY_COLUMNS: Final = (
    "target",
    "workload",
    "shards",
    "mode",
    "invocations",
    "failed",
    "cold",
    "median_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "p95_ms",
    "cold_median_ms",
    "cold_p95_ms",
    "warm_median_ms",
    "warm_p95_ms",
    "init_median_ms",
    "compute_median_ms",
    "makespan_median_ms",
    "makespan_ci95_low_ms",
    "makespan_ci95_high_ms",
    "items_per_s",
    "max_rss_mb",
    "cost_usd",
    "accuracy",
    # Appended (readers of older columns keep working):
    "straggler_ratio_median",
    "straggler_ratio_max",
    "job_cost_usd",
    "memory_mb",
    "memory_pick",  # which picks of serverless_hpc.picks this size is, in a memory sweep
    # What the figures of a row measure besides the platform:
    "oversubscribed",  # more CPU was in flight than this machine has (local-faas)
    "queued_shards",  # the most shards of a batch that waited for an in-flight slot
    "throttled",  # answers the platform throttled (each re-sent after a backoff)
    "retries",  # re-sends of requests that never reached the platform
    "flags",  # the above, as words
)


def _accuracy(b: Mapping[str, Any]) -> float | None:
    """A batch's accuracy, under the key its workload's spec declares (None: none)."""
    spec = workloads.specs().get(str(b.get("workload")))
    value = b.get(spec.accuracy_key) if spec is not None and spec.accuracy_key else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def key_label(key: tuple[Any, ...] | dict[str, Any]) -> str:
    """A row's key as text, e.g. ``local-faas/classify/15/natural`` (how sentences cite rows)."""
    if isinstance(key, dict):
        key = row_key(key)
    return "/".join(str(k) for k in key[:4])


def job_costs(jobs: Mapping[JobKey, Sequence[Mapping[str, Any]]]) -> dict[RowKey, list[float]]:
    """Per row: the cost of each job (batch) whose every invocation carries a cost
    (``jobs``: :attr:`RowIndex.jobs`)."""
    out: dict[RowKey, list[float]] = defaultdict(list)
    for (key, _), recs in jobs.items():
        costs = [r.get("cost_usd") for r in recs]
        if costs and all(c is not None for c in costs):
            out[key].append(sum(c for c in costs if c is not None))
    return out


def batch_spans(
    batches: Sequence[dict[str, Any]] | Mapping[RowKey, Sequence[dict[str, Any]]],
) -> dict[RowKey, list[float]]:
    """Per row: the makespans (time to result) of its batches without failures (``batches``:
    a run's batch lines, or already grouped by row as :attr:`RowIndex.batches`)."""
    grouped = batches if isinstance(batches, Mapping) else RowIndex.of((), batches).batches
    out: dict[RowKey, list[float]] = {}
    for key, group in grouped.items():
        spans = [
            float(b["makespan_ms"])
            for b in group
            if isinstance(b.get("makespan_ms"), int | float)
            and b["makespan_ms"] > 0
            and not b["failed"]
        ]
        if spans:
            out[key] = spans
    return out


def _count(values: Sequence[Any]) -> int:
    return sum(v for v in values if isinstance(v, int) and not isinstance(v, bool))


def _flags(
    recs: Sequence[Mapping[str, Any]], batches: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What a row's figures measure besides the platform: oversubscription of this machine,
    shards that waited for an in-flight slot, throttled answers and re-sends."""
    said = [r.get("oversubscribed") for r in recs if isinstance(r.get("oversubscribed"), bool)]
    oversubscribed = any(said) if said else None
    queued = 0
    for b in batches:
        limit, shards = b.get("max_parallel"), b.get("shards")
        if isinstance(limit, int) and isinstance(shards, int) and limit > 0:
            queued = max(queued, shards - limit)
    throttled = _count([r.get("throttled") for r in recs])
    retries = _count([r.get("retries") for r in recs])
    words = []
    if oversubscribed:
        words.append("oversubscribed")
    if queued > 0:
        words.append(f"{queued} shard(s) queued")
    if throttled:
        words.append(f"{throttled} throttled")
    if retries:
        words.append(f"{retries} re-sent")
    return {
        "oversubscribed": oversubscribed,
        "queued_shards": queued,
        "throttled": throttled,
        "retries": retries,
        "flags": "; ".join(words),
    }


def measures_the_platform(row: Mapping[str, Any]) -> bool:
    """Whether a row's times are the platform's: not taken while this machine was
    oversubscribed, nor with shards waiting for an in-flight slot."""
    return not row.get("oversubscribed") and not row.get("queued_shards")


def summarize(
    records: Sequence[Mapping[str, Any]],
    batches: Sequence[dict[str, Any]],
    *,
    index: RowIndex | None = None,
) -> list[dict[str, Any]]:
    """One row per (target, workload, shards, mode) with the columns of :data:`SUMMARY_COLUMNS`
    (``index``: the records and batches already grouped, as :meth:`RunData.index` has them)."""
    index = index or RowIndex.of(records, batches)
    groups = index.records
    bgroups = index.batches
    spans_by_key = batch_spans(bgroups)
    costs_by_key = job_costs(index.jobs)
    rows = []
    for key in sorted(groups):
        recs = groups[key]
        bs = bgroups.get(key, [])
        ok = [r for r in recs if r["ok"]]
        lat = [r["client_ms"] for r in ok]
        cold = [r["client_ms"] for r in ok if r["cold"]]
        warm = [r["client_ms"] for r in ok if not r["cold"]]
        ci = median_ci(lat)
        spans = spans_by_key.get(key, [])
        span_ci = median_ci(spans)
        span_med = statistics.median(spans) if spans else None
        items = statistics.median([b.get("items", 0) for b in bs]) if bs else None
        costs = [r["cost_usd"] for r in recs if r.get("cost_usd") is not None]
        acc = [a for a in map(_accuracy, bs) if a is not None]
        rss = [r["max_rss_mb"] for r in recs if r.get("max_rss_mb") is not None]
        ratios = [b["straggler_ratio"] for b in bs if b.get("straggler_ratio") is not None]
        flagged = _flags(recs, bs)
        rows.append(
            {
                "target": key[0],
                "workload": key[1],
                "shards": key[2],
                "mode": key[3],
                "invocations": len(recs),
                "failed": len(recs) - len(ok),
                "cold": sum(1 for r in ok if r["cold"]),
                "median_ms": statistics.median(lat) if lat else None,
                "ci95_low_ms": ci[0] if ci else None,
                "ci95_high_ms": ci[1] if ci else None,
                "p95_ms": percentile(lat, 95),
                "cold_median_ms": statistics.median(cold) if cold else None,
                "cold_p95_ms": percentile(cold, 95),
                "warm_median_ms": statistics.median(warm) if warm else None,
                "warm_p95_ms": percentile(warm, 95),
                "init_median_ms": median(r.get("init_ms") for r in ok if r["cold"]),
                "compute_median_ms": median(r.get("compute_ms") for r in ok),
                "makespan_median_ms": span_med,
                "makespan_ci95_low_ms": span_ci[0] if span_ci else None,
                "makespan_ci95_high_ms": span_ci[1] if span_ci else None,
                "items_per_s": items / (span_med / 1e3) if items and span_med else None,
                "max_rss_mb": max(rss) if rss else None,
                "cost_usd": sum(costs) if costs else None,
                "accuracy": statistics.median(acc) if acc else None,
                "straggler_ratio_median": statistics.median(ratios) if ratios else None,
                "straggler_ratio_max": max(ratios) if ratios else None,
                "job_cost_usd": median(costs_by_key.get(key, [])),
                "memory_mb": key[4] or None,
                "memory_pick": "",
                **flagged,
            }
        )
    return rows


def time_to_result_ms(row: dict[str, Any]) -> float | None:
    """A row's time to result: the median makespan of its jobs, else the median latency."""
    span = row.get("makespan_median_ms")
    return float(span) if span is not None else row.get("median_ms")


def fmt(value: Any) -> str:
    """A cell as text: empty for None, 4 significant digits below 1, one decimal above."""
    if value is None:
        return ""
    if isinstance(value, float):
        if abs(value) < 1 and value != 0:
            return f"{value:.4g}"
        return f"{value:.1f}"
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The summary as CSV (full precision)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in SUMMARY_COLUMNS})


#: The columns of the Markdown and HTML tables: (key, header).
MD_COLUMNS: Final = (
    ("target", "target"),
    ("workload", "workload"),
    ("shards", "shards"),
    ("mode", "mode"),
    ("invocations", "n"),
    ("failed", "failed"),
    ("cold", "cold"),
    ("median_ms", "median ms"),
    ("ci95_low_ms", "95% CI low"),
    ("ci95_high_ms", "95% CI high"),
    ("cold_median_ms", "cold median"),
    ("warm_median_ms", "warm median"),
    ("compute_median_ms", "compute median"),
    ("makespan_median_ms", "makespan ms"),
    ("straggler_ratio_median", "straggler ratio"),
    ("items_per_s", "items/s"),
    ("cost_usd", "cost USD"),
    ("accuracy", "accuracy"),
    ("memory_mb", "memory MB"),
    ("memory_pick", "memory pick"),
    ("flags", "flags"),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(h for _, h in MD_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in MD_COLUMNS) + "|"
    body = ["| " + " | ".join(fmt(row[k]) for k, _ in MD_COLUMNS) + " |" for row in rows]
    return "\n".join([head, sep, *body]) + "\n"
