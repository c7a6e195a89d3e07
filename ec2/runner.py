"""The standalone runner the comparison EC2 instance executes for one batch (via SSM).

The driver's ``ec2`` target uploads a batch of contract requests as JSON to the results
bucket and runs, through SSM Run Command::

    python ec2/runner.py --requests s3://<results>/results/ec2/<run>/<batch>/requests.json \\
        --out s3://<results>/results/ec2/<run>/<batch>/results.json \\
        --dataset s3://<dataset>/fashion-mnist --store s3://<results> --workers 4

The runner stages the dataset files the requests need (md5-verified, once per instance),
runs the requests on the ``standalone`` target (the same pool of worker processes a laptop
runs, one per vCPU by default; the first request of a workload in a worker is its cold
start, its imports timed as ``preload_ms``), and writes one result per request, in order,
with the instance's own timings. It is an adapter only: every request goes through
:func:`serverless_hpc.handler.handle` in a worker, with ``platform="ec2"``.

It exits 0 when it wrote its results (failed requests are in them, as failure envelopes) and
non-zero only when it could not write results at all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serverless_hpc.data.fashion_mnist import Split

log = logging.getLogger("serverless_hpc.ec2.runner")


def run_batch(
    requests: Sequence[Any], workers: int, *, data_dir: Path, store_uri: str
) -> list[dict[str, Any]]:
    """Run ``requests`` on the ``standalone`` target: the same worker pool as on a laptop.

    Each result is the standalone target's outcome (:meth:`Outcome.to_dict`, the one
    serialisation of an invocation: the first use of a workload in a worker is cold and pays
    its imports; ``instance`` is the worker's pid) with the instance's start and end times.
    """
    from concurrent.futures import ThreadPoolExecutor

    from serverless_hpc import workloads
    from serverless_hpc.targets.base import TargetSettings
    from serverless_hpc.targets.standalone import StandaloneTarget

    settings = TargetSettings(
        data_dir=data_dir, store_uri=store_uri, concurrency=max(1, min(workers, len(requests)))
    )

    def one(target: StandaloneTarget, request: Any) -> dict[str, Any]:
        name = request.get("workload") if isinstance(request, dict) else None
        started = time.time()
        spec = workloads.specs().get(str(name))
        # an unknown workload: the worker answers InvalidRequest at once; the bound is moot
        outcome = target.invoke(request, timeout_s=spec.timeout_s if spec else 60.0)
        return {"outcome": outcome.to_dict(), "t_start": started, "t_end": time.time()}

    with (
        StandaloneTarget(settings, platform="ec2") as target,
        ThreadPoolExecutor(target.max_parallel) as pool,
    ):
        return list(pool.map(lambda r: one(target, r), requests))


def _splits(requests: Sequence[dict[str, Any]]) -> list[Split]:
    from serverless_hpc.aws.function.staging import dataset_splits

    needed: set[Split] = set()
    for r in requests:
        if isinstance(r, dict) and isinstance(r.get("workload"), str):
            needed.update(dataset_splits(r["workload"], r.get("params")))
    return sorted(needed)


def execute(
    *,
    requests_uri: str,
    out_uri: str,
    dataset_uri: str | None,
    store_uri: str,
    data_dir: Path,
    workers: int,
    s3: Any = None,
) -> dict[str, Any]:
    """Read the batch, stage the data, run it and write the results document; return it."""
    from serverless_hpc.aws.function.staging import stage_dataset
    from serverless_hpc.contract import DATASET_ERROR, error_response
    from serverless_hpc.data.fashion_mnist import DatasetError
    from serverless_hpc.invocation import Outcome
    from serverless_hpc.store_s3 import default_client, parse_s3_uri

    s3 = s3 or default_client()
    bucket, key = parse_s3_uri(requests_uri)
    requests = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    os.environ["FASHION_MNIST_DIR"] = str(data_dir)
    os.environ["SHPC_STORE"] = store_uri
    started = time.time()
    stage_ms = 0.0
    results: list[dict[str, Any]]
    try:
        t0 = time.perf_counter()
        if dataset_uri:
            stage_dataset(dataset_uri, data_dir, _splits(requests), client=s3)
        stage_ms = (time.perf_counter() - t0) * 1e3
        results = run_batch(requests, workers, data_dir=data_dir, store_uri=store_uri)
    except DatasetError as exc:
        log.exception("dataset staging failed")
        now = time.time()
        env = error_response(DATASET_ERROR, str(exc))
        failed = Outcome(response=env, cold=False, duration_ms=0.0).to_dict()
        results = [{"outcome": failed, "t_start": now, "t_end": now} for _ in requests]
    doc = {
        "started": started,
        "finished": time.time(),
        "stage_ms": stage_ms,
        "workers": workers,
        "cpus": os.cpu_count(),
        "results": results,
    }
    out_bucket, out_key = parse_s3_uri(out_uri)
    s3.put_object(Bucket=out_bucket, Key=out_key, Body=json.dumps(doc).encode())
    return doc


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (what the SSM command runs)."""
    p = argparse.ArgumentParser(prog="runner.py", description=__doc__.splitlines()[0])
    p.add_argument("--requests", required=True, help="s3:// URI of the requests JSON list")
    p.add_argument("--out", required=True, help="s3:// URI to write the results document to")
    p.add_argument("--dataset", help="s3:// URI of the dataset files")
    p.add_argument("--store", required=True, help="model store URI (s3://bucket)")
    p.add_argument("--data-dir", type=Path, default=Path("/opt/serverless-hpc/data"))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    doc = execute(
        requests_uri=args.requests,
        out_uri=args.out,
        dataset_uri=args.dataset,
        store_uri=args.store,
        data_dir=args.data_dir,
        workers=args.workers,
    )
    failed = sum(1 for r in doc["results"] if not r["outcome"]["response"].get("ok"))
    log.info("batch done: %d request(s), %d failed", len(doc["results"]), failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
