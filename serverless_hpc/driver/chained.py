"""The chain strategy: a resumable training invoked leg after leg until it is done.

A leg that stops in time (``"status": "continue"``) or that the platform killed is invoked
again with the same request and resumes from its checkpoint (:func:`serverless_hpc.chain.
next_step` decides). While a leg runs, the driver polls the training's progress note so the
progress bar moves per epoch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from serverless_hpc import chain, workloads
from serverless_hpc.contract import ContractError
from serverless_hpc.driver.context import BatchRun, RunContext, Ticker, error_type, full_result
from serverless_hpc.driver.plan import Batch, epochs_of
from serverless_hpc.rundir import InvocationRecord
from serverless_hpc.targets.base import Target

log = logging.getLogger(__name__)


def run_chain(ctx: RunContext, batch: Batch) -> BatchRun:
    """Invoke a resumable training until it is done (one record per leg, ``leg`` 0, 1, ...).

    The records and, when the chain finished, its final result (for the spec's combine).
    """
    target = ctx.target
    request = batch.requests[0]
    epochs = epochs_of(workloads.spec(batch.workload), request["params"])
    timeout_s = ctx.timeout_s(batch.workload)
    ticker = Ticker(ctx.epoch_progress, epochs)
    refused = ctx.prepare(batch, timeout_s, tick=False)
    if refused is not None:
        ticker.to(epochs)
        if ctx.progress:
            ctx.progress(1)
        return refused, []
    state = chain.ChainState()
    recs: list[InvocationRecord] = []
    final: dict[str, Any] | None = None
    while not ctx.interrupted.is_set():
        with _watch_epochs(target, request, ticker):
            timed = ctx.invoke(request, timeout_s, False)
        if ctx.interrupted.is_set():
            break  # cut off by the user, not a failure
        rec = ctx.record(batch, 0, timed, leg=state.legs)
        full = full_result(timed.outcome)
        ctx.writer.write(rec)
        recs.append(rec)
        step = chain.next_step(
            state, rec.ok, full, error_type(timed.outcome), leg_bound=chain.max_legs(epochs)
        )
        ticker.to(state.epoch if step is not chain.Step.DONE else epochs)
        if step is chain.Step.DONE:
            final = full
            break
        if step is chain.Step.FAIL:
            log.error(
                "%s %s chain stopped after leg %d: %s (last: %s)",
                batch.target,
                batch.workload,
                state.legs - 1,
                state.why,
                rec.error or "ok",
            )
            break
        log.info(
            "%s %s: leg %d %s, resuming after epoch %d",
            batch.target,
            batch.workload,
            state.legs - 1,
            "stopped in time" if rec.ok else f"failed ({rec.error})",
            state.epoch,
        )
    ticker.to(epochs)  # the bars end at 100% whatever happened
    if ctx.progress:
        ctx.progress(1)  # the chain counts one on the bar of invocations
    return recs, [final] if final is not None else []


#: How often the driver reads a chain's progress note while a leg runs, seconds.
EPOCH_POLL_S: Final = 2.0


@contextmanager
def _watch_epochs(target: Target, request: Mapping[str, Any], ticker: Ticker) -> Iterator[None]:
    """While a leg runs, poll its progress note in the store (where the driver reaches it:
    the local store, or S3 for ``lambda``) so the bar moves per epoch, not per leg. A store
    that fails otherwise than "not there yet" (credentials, network) ends the polling, said
    once: the bar then moves per leg."""
    key = _progress_key(request)
    store = target.scratch_store() if key and ticker.progress else None
    if store is None or key is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(EPOCH_POLL_S):
            try:
                note = json.loads(store.get_bytes(key))
                ticker.to(int(note["epoch"]))
            except (ContractError, OSError, ValueError, KeyError, TypeError):
                continue  # not written yet, or mid-replace: the next poll will see it
            except Exception as exc:  # noqa: BLE001 - a remote store's own errors (botocore)
                log.warning(
                    "%s: progress notes unreadable, the bar moves per leg: %s", target.name, exc
                )
                return

    watcher = threading.Thread(target=poll, name="epochs", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=EPOCH_POLL_S * 2)


def _progress_key(request: Mapping[str, Any]) -> str | None:
    note = workloads.spec(request.get("workload")).progress_note
    params = request.get("params")
    if note is None or not isinstance(params, Mapping):
        return None
    try:
        return note(params)
    except ContractError:
        return None
