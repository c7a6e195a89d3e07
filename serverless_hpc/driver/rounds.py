"""The rounds strategy: a data-parallel training, round after round of workers then a combine.

Each round's workers start together from the round's stored start and store their weights;
then one combine invocation averages them (see :mod:`serverless_hpc.chain`). A combine
result with ``"status": "continue"`` asks for another round.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from serverless_hpc import chain
from serverless_hpc.driver.context import (
    BatchRun,
    RunContext,
    Ticker,
    error_type,
    full_result,
    params_of,
)
from serverless_hpc.driver.plan import Batch
from serverless_hpc.rundir import InvocationRecord

log = logging.getLogger(__name__)


def run_rounds(ctx: RunContext, batch: Batch) -> BatchRun:
    """A data-parallel training: per round, the workers at once, then the combine step.

    An invocation the platform stopped is retried (up to :data:`chain.MAX_FAILED_LEGS`
    attempts): a worker restarts its round from the round's stored start, so a kill costs
    at most that worker's part of one epoch. Records carry ``round`` and ``role``; a worker's
    ``shard`` is its index, the combine step's is the worker count.
    """
    w = batch.workers
    rounds = chain.rounds(params_of(batch))
    timeout_s = ctx.timeout_s(batch.workload)
    ticks = Ticker(ctx.progress, rounds * (w + 1))  # here: one tick per invocation
    refused = ctx.prepare(batch, timeout_s, tick=False)
    if refused is not None:
        ticks.to(rounds * (w + 1))
        return refused, []
    lock = threading.Lock()
    recs: list[InvocationRecord] = []
    in_flight = threading.BoundedSemaphore(max(1, ctx.target.max_parallel))

    def attempt(request: dict[str, Any], index: int, rnd: int, role: str) -> dict[str, Any] | None:
        for tries in range(chain.MAX_FAILED_LEGS):
            with in_flight:
                if ctx.interrupted.is_set():
                    return None
                timed = ctx.invoke(request, timeout_s, False)
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

    final: dict[str, Any] | None = None
    for rnd in range(rounds):
        worker_reqs, combine_req = chain.round_requests(batch.requests[0], w, rnd)
        futures = [ctx.pool.submit(attempt, r, i, rnd, "worker") for i, r in enumerate(worker_reqs)]
        if not all(f.result() is not None for f in futures):
            log.error("%s round %d: a worker failed; the training stops", batch.target, rnd)
            break
        combined = attempt(combine_req, w, rnd, "combine")
        if combined is None:
            log.error("%s round %d: combining failed; the training stops", batch.target, rnd)
            break
        if combined.get("status") != "continue":
            final = combined
            break
    ticks.to(rounds * (w + 1))  # the bar ends at 100% even when a round failed
    recs.sort(key=lambda r: r.t_send)
    return recs, [final] if final is not None else []
