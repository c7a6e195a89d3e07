"""A timeline per fan-out batch: one row per invocation, where its time went.

From each record: *send* is when the driver sent the request (after any wait for the
target's in-flight cap, relative to the batch's first send); *init* is the cold start the
platform reported; *compute* is the workload's own time; *load/other* is the rest of the
handler's duration; *wait/queue* is what the client saw beyond the handler and init (queueing
on the platform, transport, serialisation: a record cannot say where in the call it fell, so
it is drawn first); *reply* is when the response was parsed. Stragglers and cold starts stand
out as long bars.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from serverless_hpc.report.data import JobKey, RowIndex, RowKey
from serverless_hpc.report.tables import key_label


def _parts(r: Mapping[str, Any]) -> dict[str, float]:
    client = float(r["client_ms"])
    init = float(r.get("init_ms") or 0.0) if r["cold"] else 0.0
    compute = float(r.get("compute_ms") or 0.0)
    if r.get("duration_ms") is not None:
        handler = float(r["duration_ms"])
    elif r.get("compute_ms") is not None:
        handler = compute + float(r.get("load_ms") or 0.0)
    else:
        handler = 0.0
    compute = min(compute, handler)
    # Platforms differ on whether duration includes init; never draw more than the client saw.
    init = min(init, max(client - handler, 0.0))
    return {
        "wait_ms": max(client - handler - init, 0.0),
        "init_ms": init,
        "load_ms": max(handler - compute, 0.0),
        "compute_ms": compute,
    }


def _row_label(key: RowKey) -> str:
    """A row as a timeline names it: with its memory size when the run swept sizes."""
    return f"{key_label(key)} at {key[4]} MB" if key[4] else key_label(key)


def _chosen(by_job: Mapping[JobKey, Sequence[Mapping[str, Any]]]) -> dict[JobKey, str]:
    """Per summary row, its slowest batch and its median one (by span): the typical and the
    worst case, which is what a timeline is read for; the page stays bounded by rows."""
    per_row: dict[RowKey, list[tuple[float, JobKey]]] = defaultdict(list)
    for job, recs in by_job.items():
        if len(recs) < 2:
            continue
        t0 = min(r["t_send"] for r in recs)
        per_row[job[0]].append((max(r["t_recv"] for r in recs) - t0, job))
    chosen: dict[JobKey, str] = {}
    for spans in per_row.values():
        spans.sort()
        chosen[spans[(len(spans) - 1) // 2][1]] = "median batch"
        chosen[spans[-1][1]] = "slowest batch" if len(spans) > 1 else "the only batch"
    return chosen


def batch_timelines(
    records: Sequence[Mapping[str, Any]],
    batches: Sequence[dict[str, Any]],
    *,
    index: RowIndex | None = None,
) -> list[dict[str, Any]]:
    """The median and the slowest fan-out batch of each summary row (two or more invocations):
    one row per invocation, times in ms from the batch's first send (``index``: the records
    and batches already grouped, as :meth:`RunData.index` has them)."""
    index = index or RowIndex.of(records, batches)
    by_batch = index.jobs
    out = []
    chosen = _chosen(by_batch)
    for key in sorted(chosen):
        recs = sorted(by_batch[key], key=lambda r: (r["shard"], r["t_send"]))
        t0 = min(r["t_send"] for r in recs)
        span = max((r["t_recv"] - t0) * 1e3 for r in recs) or 1.0
        rows = []
        for r in recs:
            send = (r["t_send"] - t0) * 1e3
            parts = _parts(r)
            scale = 100.0 / span
            rows.append(
                {
                    "shard": r["shard"],
                    "cold": r["cold"],
                    "ok": r["ok"],
                    "send_ms": send,
                    "reply_ms": (r["t_recv"] - t0) * 1e3,
                    "client_ms": r["client_ms"],
                    **parts,
                    # Percentages of the batch's span, for the bars.
                    "bar": {
                        "offset": send * scale,
                        **{k.removesuffix("_ms"): v * scale for k, v in parts.items()},
                    },
                }
            )
        out.append(
            {
                "label": f"{_row_label(key[0])} repeat {key[1]} ({chosen[key]})",
                "span_ms": span,
                "straggler_ratio": (index.batch_of.get(key) or {}).get("straggler_ratio"),
                "rows": rows,
            }
        )
    return out
