"""The fan-out strategy: a batch's shards sent at once, each recorded as it completes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from serverless_hpc.driver.config import BenchConfig
from serverless_hpc.driver.context import BatchRun, RunContext, full_result
from serverless_hpc.driver.plan import Batch
from serverless_hpc.rundir import InvocationRecord
from serverless_hpc.targets.base import Target, TimedOutcome

log = logging.getLogger(__name__)


def threads_needed(cfg: BenchConfig, targets: Iterable[Target]) -> int:
    """The invocation threads a run needs: what may be in flight at once, not the plan.

    Per target, a fan-out takes at most its widest batch or its in-flight limit
    (``max_parallel``), whichever is smaller, since no more are sent at once; a
    batch-native target fans out itself and takes threads only for data-parallel rounds
    (``--train-workers``, submitted together). A plan of 1,000 shards against a limit of
    64 thus takes 64 threads, not 1,000.
    """
    widest = max((*cfg.shards, 1))
    workers = max((*cfg.train_workers, 1))
    need = 1
    for target in targets:
        fan = workers if target.batch_native else max(widest, workers)
        need = max(need, min(fan, max(1, target.max_parallel)))
    return need


def run_fanout(ctx: RunContext, batch: Batch) -> BatchRun:
    """Run one batch; its records (by shard) and its successful full results (for combine).

    All shards are submitted at once, but no more than the target's ``max_parallel`` are in
    flight: ``client_ms`` then measures the invocation, not a wait in the driver's queue,
    while the batch's makespan still includes any such wait.
    """
    target = ctx.target
    timeout_s = ctx.timeout_s(batch.workload)
    force_cold = batch.mode == "cold"
    refused = ctx.prepare(batch, timeout_s)
    if refused is not None:
        return refused, []
    lock = threading.Lock()
    done: list[tuple[InvocationRecord, dict | None]] = []

    def keep(index: int, timed: TimedOutcome) -> None:
        rec = ctx.record(batch, index, timed)
        ctx.writer.write(rec)
        with lock:
            done.append((rec, full_result(timed.outcome)))
        if not rec.ok:
            log.warning("%s %s shard %d failed: %s", batch.target, batch.workload, index, rec.error)
        if ctx.progress:
            ctx.progress(1)

    in_flight = threading.BoundedSemaphore(max(1, target.max_parallel))

    def one(index: int) -> None:
        with in_flight:
            if ctx.interrupted.is_set():
                return  # queued behind the cap when the user interrupted: never sent
            timed = ctx.invoke(batch.requests[index], timeout_s, force_cold)
        if ctx.interrupted.is_set():
            return  # cut off by the user (the target was closed under it), not a failure
        keep(index, timed)

    if target.batch_native:
        for index, timed in enumerate(ctx.invoke_batch(batch, timeout_s, force_cold)):
            keep(index, timed)
    else:
        futures = [ctx.pool.submit(one, i) for i in range(len(batch.requests))]
        for fut in futures:
            fut.result()
    done.sort(key=lambda d: d[0].shard)
    return [d[0] for d in done], [d[1] for d in done if d[1] is not None]
