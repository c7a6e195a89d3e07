"""Run directories made up for the dashboard's tests, in the driver's own formats.

The records are :class:`~serverless_hpc.rundir.InvocationRecord` lines written by the
project's serialiser and run.json holds a config as ``bench`` writes it; the figures are
invented (fixture data, not measurements).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serverless_hpc.contract import error_response
from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import InvocationRecord

#: What a run's config looks like in run.json (the planned invocations: 1 + 2 = 3).
CONFIG: dict[str, Any] = {
    "targets": ["standalone"],
    "workloads": ["dataproc"],
    "shards": [1, 2],
    "repeats": 1,
    "train_repeats": 1,
    "modes": ["natural"],
    "cold_repeats": 2,
    "params": {"dataproc": {"split": "test"}},
    "settings": {
        "data_dir": "/secret/place/fashion-mnist",
        "store_uri": "s3://private-bucket/models",
        "memory_mb": None,
        "concurrency": None,
        "keep_alive_s": 60.0,
        "timeout_s": None,
    },
}


def record_line(
    *,
    shards: int = 1,
    shard: int = 0,
    ok: bool = True,
    client_ms: float = 100.0,
    cold: bool = False,
    error: str = "no answer",
    **context: Any,
) -> str:
    """One records.jsonl line (with its newline) as the driver writes it."""
    response: dict[str, Any] = (
        {"ok": True, "result": {}, "timings": {"load_ms": 1.0, "compute_ms": client_ms / 2}}
        if ok
        else error_response("Timeout", error)
    )
    fields: dict[str, Any] = {
        "run_id": "r",
        "target": "standalone",
        "workload": "dataproc",
        "shard": shard,
        "shards": shards,
        "items": 100,
        "repeat": 0,
        "mode": "natural",
        "client_ms": client_ms,
        "t_send": 1.0,
        "t_recv": 1.1,
        "result": {"big": list(range(50))},
        **context,
    }
    return (
        InvocationRecord(**fields, outcome=Outcome(response=response, cold=cold)).to_json() + "\n"
    )


def make_run(
    results: Path,
    run_id: str,
    *,
    config: dict[str, Any] | None = None,
    records: Sequence[str] = (),
    finished: bool = True,
    aborted: bool = False,
    serve: dict[str, Any] | None = None,
    summary: str | None = None,
    headline: Any = None,
    report: bool = False,
    log: str | None = None,
    with_meta: bool = True,
    planned: int | None = 3,
) -> Path:
    """A run directory under ``results``; returns its path."""
    out = results / run_id
    out.mkdir(parents=True, exist_ok=True)
    if with_meta:
        meta: dict[str, Any] = {
            "run_id": run_id,
            "config": config or CONFIG,
            "environment": {"platform": "secret-host-details"},
            "targets": {"standalone": {}},
            "started": 1_700_000_000.0,
            "skipped": [],
        }
        if planned is not None:
            meta["planned_invocations"] = planned
        if finished:
            meta["finished"] = 1_700_000_100.0
        if aborted:
            meta["aborted"] = {"time": 1_700_000_050.0, "by": "KeyboardInterrupt"}
        (out / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    if records:
        (out / "records.jsonl").write_text("".join(records), encoding="utf-8")
    if serve is not None:
        (out / "serve.json").write_text(json.dumps(serve), encoding="utf-8")
    if summary is not None:
        (out / "summary.csv").write_text(summary, encoding="utf-8")
    if headline is not None:
        (out / "headline.json").write_text(json.dumps(headline), encoding="utf-8")
    if report:
        (out / "report.html").write_text("<!doctype html><title>report</title><h1>ok</h1>")
    if log is not None:
        (out / "serve.log").write_text(log, encoding="utf-8")
    return out


def three_records() -> list[str]:
    """A whole run of :data:`CONFIG`: one invocation at 1 shard, two at 2 (one failed)."""
    return [
        record_line(shards=1, client_ms=140.0, cold=True),
        record_line(shards=2, shard=0, client_ms=80.0),
        record_line(shards=2, shard=1, ok=False, client_ms=60.0),
    ]
