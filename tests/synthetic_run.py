"""A small synthetic run directory for the cloud verdict's tests (hand-made records, no target
ran): ``classify`` and ``dataproc`` on ``local-faas`` and ``standalone`` at two fan-outs, and
one ``train`` job on each, with the fields the report reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGES = 3000
#: dataproc's default input: the training split.
TRAIN_IMAGES = 60_000


def _record(
    target: str, workload: str, *, shard: int, shards: int, repeat: int, **kw: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "synthetic",
        "target": target,
        "workload": workload,
        "shard": shard,
        "shards": shards,
        "items": 0,
        "repeat": repeat,
        "mode": "natural",
        "cold": False,
        "ok": True,
        "error": None,
        "init_ms": None,
        "load_ms": None,
        "compute_ms": None,
        "billed_ms": None,
        "max_rss_mb": 300.0,
        "cost_usd": None,
        "breakdown": {},
        "result": None,
    }
    base.update(kw)
    return base


def _job(
    target: str, workload: str, shards: int, repeat: int, ms: float, **kw: Any
) -> list[dict[str, Any]]:
    t0 = 1000.0 + repeat * 100.0
    total = {"classify": IMAGES, "dataproc": TRAIN_IMAGES}.get(workload, 0)
    per = total // shards
    return [
        _record(
            target,
            workload,
            shard=i,
            shards=shards,
            repeat=repeat,
            items=per,
            client_ms=ms + 5.0,
            duration_ms=ms,
            t_send=t0,
            t_recv=t0 + (ms + 5.0) / 1e3,
            cold=repeat == 0,
            init_ms=300.0 if repeat == 0 else None,
            **kw,
        )
        for i in range(shards)
    ]


def _batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    r0 = records[0]
    return {
        "run_id": r0["run_id"],
        "target": r0["target"],
        "workload": r0["workload"],
        "shards": r0["shards"],
        "repeat": r0["repeat"],
        "mode": r0["mode"],
        "invocations": len(records),
        "failed": 0,
        "items": sum(r["items"] for r in records),
        "makespan_ms": (max(r["t_recv"] for r in records) - min(r["t_send"] for r in records))
        * 1e3,
        "straggler_ratio": 1.0,
    }


def write(out: Path) -> Path:
    """Write the run into ``out`` (created) and return it."""
    jobs = []
    for repeat in range(6):
        for shards in (1, 5):
            per = IMAGES // shards
            jobs.append(
                _job(
                    "local-faas",
                    "classify",
                    shards,
                    repeat,
                    20.0 + 0.1 * per,
                    memory_mb=2048,
                    resources={"cpus": 1.16, "cpu": "cgroup-v1-quota"},
                )
            )
            jobs.append(
                _job(
                    "standalone",
                    "classify",
                    shards,
                    repeat,
                    (20.0 + 0.1 * per) / (1 if shards == 1 else 2),
                    memory_mb=16000,
                    resources={"cpus": 2.0, "cpu": "cgroup-v1-quota"},
                )
            )
            per = TRAIN_IMAGES // shards
            for target, ms, cpus in (
                ("local-faas", 30.0 + 0.004 * per, 1.16),
                ("standalone", (20.0 + 0.003 * per) / (1 if shards == 1 else 2), 2.0),
            ):
                jobs.append(
                    _job(
                        target,
                        "dataproc",
                        shards,
                        repeat,
                        ms,
                        memory_mb=2048 if target == "local-faas" else 16000,
                        resources={"cpus": cpus, "cpu": "cgroup-v1-quota"},
                    )
                )
    for repeat in range(2):
        jobs.append(
            _job(
                "local-faas",
                "train",
                1,
                repeat,
                300_000.0,
                memory_mb=3538,
                resources={"cpus": 2.0},
                max_rss_mb=1800.0,
            )
        )
        jobs.append(
            _job(
                "standalone",
                "train",
                1,
                repeat,
                290_000.0,
                memory_mb=16000,
                resources={"cpus": 2.0},
                max_rss_mb=1800.0,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    records = [r for job in jobs for r in job]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "batches.jsonl").write_text("".join(json.dumps(_batch(j)) + "\n" for j in jobs))
    meta = {
        "run_id": "synthetic",
        "started": 1.0,
        "finished": 2.0,
        "planned_invocations": len(records),
        "targets": {"standalone": {"workers": 2, "vcpus": 2.0, "vm_vcpus": 4}},
        "config": {"params": {}},
    }
    (out / "run.json").write_text(json.dumps(meta))
    return out
