"""The rounds strategy: a job in rounds, each round's workers at once, then its combine step.

Any workload whose spec declares a :class:`~serverless_hpc.workloads.spec.RoundPlan` runs
here: a data-parallel training (each round's workers train from the round's stored start
and store their weights; a combine invocation averages them, see :mod:`serverless_hpc.chain`)
and the coupled workloads that exchange data through the store (a stencil's halos, a
shuffle's partitions, staged matrix panels). A round's invocations start when the previous
round's have ended; a combine result with ``"status": "continue"`` continues, any other ends
the job; after the plan's rounds the job ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from serverless_hpc import chain, workloads
from serverless_hpc.driver.context import (
    BatchRun,
    RunContext,
    Ticker,
    error_type,
    full_result,
)
from serverless_hpc.driver.lifecycle import delete_scratch
from serverless_hpc.driver.plan import Batch, job_id, round_invocations
from serverless_hpc.rundir import InvocationRecord
from serverless_hpc.targets.base import Target
from serverless_hpc.workloads.spec import StoreAccess, WorkloadSpec, scratch_prefix

log = logging.getLogger(__name__)

#: Timings a function in rounds reports, summed per batch (see ``workloads/roundio.py``).
ROUND_TIMINGS: Final = (
    "compute_ms",
    "store_read_ms",
    "store_write_ms",
    "bytes_read",
    "bytes_written",
)

Attempt = Callable[[dict[str, Any], int, int, str], "dict[str, Any] | None"]


def workers_of(batch: Batch) -> int:
    """A round's workers: a data-parallel training's, else the batch's fan-out."""
    return batch.workers if batch.workers > 1 else batch.shards


def in_rounds(batch: Batch) -> bool:
    """Whether ``batch`` runs in rounds by its spec's plan (a training over one worker runs
    as a chain instead; a plan of 0 rounds is a plain fan-out)."""
    spec = workloads.specs()[batch.workload]
    if spec.rounds is None or not batch.requests:
        return False
    return spec.rounds.rounds(batch.requests[0]["params"], workers_of(batch)) > 0


def run_rounds(ctx: RunContext, batch: Batch) -> BatchRun:
    """A job in rounds: per round, the workers at once, then the round's combine step.

    Its results (for the spec's combine) are the last combine step's, or the last round's
    workers' when it had none; none when a round failed. An invocation the platform stopped
    is retried (up to :data:`chain.MAX_FAILED_LEGS` attempts): a training's worker restarts
    its round from the round's stored start, any other reads the same inputs again. Records
    carry ``round`` and ``role`` (``combine``, a request's ``phase``, else ``worker``); a
    worker's ``shard`` is its index, the combine step's is the worker count.
    """
    w = workers_of(batch)
    spec = workloads.specs()[batch.workload]
    assert spec.rounds is not None  # only batches of such specs come here
    base_request = {k: v for k, v in batch.requests[0].items() if k != "shard"}
    params = dict(base_request["params"])
    if batch.workers == 1:  # a training has its chain id; any other job gets a job id
        params["job"] = job_id(batch, ctx.cfg.run_id)
    total = round_invocations(spec, params, w)
    timeout_s = ctx.timeout_s(batch.workload)
    force_cold = batch.mode == "cold"
    ticks = Ticker(ctx.progress, total)  # here: one tick per invocation
    refused = ctx.prepare(batch, timeout_s, tick=False)
    if refused is not None:
        ticks.to(total)
        return refused, []
    lock = threading.Lock()
    recs: list[InvocationRecord] = []
    in_flight = threading.BoundedSemaphore(max(1, ctx.target.max_parallel))

    def attempt(request: dict[str, Any], index: int, rnd: int, role: str) -> dict[str, Any] | None:
        for tries in range(chain.MAX_FAILED_LEGS):
            with in_flight:
                if ctx.interrupted.is_set():
                    return None
                timed = ctx.invoke(request, timeout_s, force_cold)
            if ctx.interrupted.is_set():
                return None
            full = full_result(timed.outcome)
            items = int(full.get("items", 0)) if full is not None else 0
            rec = ctx.record(
                batch, index, timed, shards=w, items=items, leg=tries, round=rnd, role=role
            )
            with lock:
                ctx.writer.write(rec)
                recs.append(rec)
            if tries == 0:
                ticks.add()
            if full is not None:
                return full
            if error_type(timed.outcome) not in chain.RESUMABLE_ERRORS:
                break
            log.warning(
                "%s round %d %s %d failed (%s); retrying", batch.target, rnd, role, index, rec.error
            )
        return None

    label = f"{batch.target} {spec.name}"
    final = _drive(spec, params, w, base_request, ctx.pool, attempt, label)
    ticks.to(total)  # the bar ends at 100% even when a round failed
    recs.sort(key=lambda r: r.t_send)
    return recs, final


def _drive(
    spec: WorkloadSpec,
    params: Mapping[str, Any],
    w: int,
    base_request: Mapping[str, Any],
    pool: ThreadPoolExecutor,
    attempt: Attempt,
    label: str,
) -> list[dict[str, Any]]:
    """Run the rounds of one job with ``attempt``; its final results (none if it failed)."""
    assert spec.rounds is not None
    rounds = spec.rounds.rounds(params, w)
    for rnd in range(rounds):
        worker_params, combine_params = spec.rounds.requests(params, w, rnd)
        futures = [
            pool.submit(
                attempt, {**base_request, "params": p}, i, rnd, str(p.get("phase") or "worker")
            )
            for i, p in enumerate(worker_params)
        ]
        done = [f.result() for f in futures]
        if not all(d is not None for d in done):
            log.error("%s round %d: a worker failed; the job stops", label, rnd)
            return []
        if combine_params is None:
            if rnd == rounds - 1:
                return [d for d in done if d is not None]
            continue
        combined = attempt(
            {**base_request, "params": combine_params}, len(worker_params), rnd, "combine"
        )
        if combined is None:
            log.error("%s round %d: combining failed; the job stops", label, rnd)
            return []
        if combined.get("status") != "continue":
            return [combined]
    return []


def rounds_summary(recs: Sequence[InvocationRecord]) -> dict[str, Any]:
    """A job in rounds' totals: rounds run, and each round timing summed over its records."""
    out: dict[str, Any] = {
        "rounds": 1 + max((r.round for r in recs if r.round is not None), default=-1)
    }
    for key in ROUND_TIMINGS:
        values = []
        for r in recs:
            timings = r.outcome.response.get("timings") if r.ok else None
            if isinstance(timings, dict) and isinstance(timings.get(key), int | float):
                values.append(float(timings[key]))
        out[f"total_{key}"] = sum(values) if values else None
    return out


def clean_job_scratch(target: Target, batch: Batch, run_id: str) -> None:
    """Delete a finished job's scratch prefix (kept after a failure, to see what it wrote).

    The prefix is the one the driver gave the job, never one a response names."""
    spec = workloads.specs()[batch.workload]
    if spec.store is not StoreAccess.SCRATCH:
        return
    delete_scratch(target, scratch_prefix(spec.name, job_id(batch, run_id)), "scratch")
