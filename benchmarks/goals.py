"""The issue's performance goals, measured with the benchmark driver itself.

* warm ``classify`` of 3000 images in one batch: compute time (goal <= 0.2 s);
* a ``local-faas`` cold start for ``classify``: new process -> ready (goal <= 1.0 s).

It trains a quick model first (1 epoch on 3000 images: the same network as the default, so
inference costs the same; its accuracy is irrelevant here), then runs classify warm and
forced-cold through the real targets, and prints medians and 95th percentiles from the
records. Speed is a property of the machine: run it on the machine you want figures for.

Usage: python benchmarks/goals.py [--repeats N] [--out DIR]   (needs the ``train`` extra)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

from serverless_hpc.data.fashion_mnist import ensure_data
from serverless_hpc.driver import BenchConfig, run
from serverless_hpc.report import percentile
from serverless_hpc.rundir import read_records
from serverless_hpc.targets.base import TargetSettings


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 95) or 0.0, 1),
        "min_ms": round(min(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="shpc-goals-")) / "run"
    settings = TargetSettings(
        data_dir=ensure_data(),
        store_uri=str(out.parent / "store"),
        log_dir=out / "logs",
    )
    cfg = BenchConfig(
        out=out,
        targets=("local-faas", "standalone"),
        workloads=("train", "classify"),
        shards=(1,),
        repeats=args.repeats,
        modes=("natural", "cold"),
        cold_repeats=args.repeats,
        params={"train": {"epochs": 1, "train_limit": 3000}},
        settings=settings,
        run_id="goals",
    )
    result = run(cfg)
    records = [r for r in read_records(out / "records.jsonl") if r["ok"]]
    classify = [r for r in records if r["workload"] == "classify"]
    figures: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "failed_invocations": result.failed,
    }
    for target in ("local-faas", "standalone"):
        warm = [r["compute_ms"] for r in classify if r["target"] == target and not r["cold"]]
        figures[f"{target}: warm classify 3000 images, compute"] = _stats(warm)
    cold = [r for r in classify if r["target"] == "local-faas" and r["mode"] == "cold"]
    figures["local-faas: classify cold start, spawn -> ready (init_ms)"] = _stats(
        [r["init_ms"] for r in cold]
    )
    figures["local-faas: classify cold invocation, client latency"] = _stats(
        [r["client_ms"] for r in cold]
    )
    print(json.dumps(figures, indent=2))
    print(f"records: {out / 'records.jsonl'}")


if __name__ == "__main__":
    main()
