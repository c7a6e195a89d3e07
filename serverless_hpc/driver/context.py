"""What every execution strategy shares while it runs a batch on one target.

A :class:`RunContext` holds the run's configuration, the target, the record writer, the
invocation threads and the interrupt flag; a strategy (:mod:`.fanout`, :mod:`.chained`,
:mod:`.rounds`) takes it and one batch, and returns the batch's records and the full results
its spec combines. The context times invocations, builds and writes their records, and
prepares a batch (memory size, warm environments) outside the timing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from serverless_hpc import workloads
from serverless_hpc.contract import PLATFORM_ERROR, error_response
from serverless_hpc.driver.config import BenchConfig, timeout_of
from serverless_hpc.driver.plan import Batch
from serverless_hpc.invocation import Outcome
from serverless_hpc.redact import scrub_response
from serverless_hpc.rundir import InvocationRecord, RecordWriter
from serverless_hpc.targets.base import Target, TimedOutcome

log = logging.getLogger(__name__)

#: The clock ``client_ms`` is measured with (nanoseconds; tests inject a fake one).
perf_ns: Callable[[], int] = time.perf_counter_ns

#: A strategy's answer: the batch's records, and the successful full results (for combine).
BatchRun = tuple[list[InvocationRecord], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class RunContext:
    """One target's share of a run: everything a strategy needs besides its batch."""

    cfg: BenchConfig
    target: Target
    writer: RecordWriter
    pool: ThreadPoolExecutor
    interrupted: threading.Event
    #: One tick per invocation (a chained training: one when it ends).
    progress: Callable[[int], None] | None = None
    #: One tick per epoch of a chained training.
    epoch_progress: Callable[[int], None] | None = None

    def timeout_s(self, workload: str) -> float:
        """The per-invocation timeout of ``workload`` (``--timeout``, else its spec's)."""
        return timeout_of(self.cfg, workload)

    def record(
        self, batch: Batch, index: int, timed: TimedOutcome, **context: Any
    ) -> InvocationRecord:
        """The record of one invocation (not written yet); ``context`` sets ``leg``,
        ``round``, ``role``, ``shards`` or ``items`` for chains and rounds."""
        outcome = timed.outcome
        if outcome.memory_mb is None and batch.memory_mb is not None:
            outcome.memory_mb = batch.memory_mb  # configured for the batch, even if it never ran
        resp = scrub_response(outcome.response)  # a platform may echo credentials in an error
        if resp is not outcome.response:
            outcome = replace(outcome, response=resp)
        return InvocationRecord(
            run_id=self.cfg.run_id,
            target=batch.target,
            workload=batch.workload,
            shard=index,
            shards=context.pop("shards", batch.shards),
            items=context.pop("items", batch.items[index] if index < len(batch.items) else 0),
            repeat=batch.repeat,
            mode=batch.mode,
            client_ms=timed.client_ms,
            t_send=timed.t_send,
            t_recv=timed.t_recv,
            outcome=outcome,
            result=compact(batch.workload, resp.get("result")) if outcome.ok else None,
            result_bytes=_json_size(resp.get("result")) if outcome.ok else None,
            **context,
        )

    def invoke(self, request: dict[str, Any], timeout_s: float, force_cold: bool) -> TimedOutcome:
        """Send one request and time it; a target that raises becomes a failed outcome."""
        t_send = time.time()
        t0 = perf_ns()
        try:
            outcome = self.target.invoke(request, timeout_s=timeout_s, force_cold=force_cold)
        except Exception as exc:  # a target bug must not lose the run: record it as a failure
            log.exception("target %s raised instead of returning an outcome", self.target.name)
            outcome = Outcome(
                response=error_response(PLATFORM_ERROR, f"{type(exc).__name__}: {exc}"),
                cold=False,
            )
        client_ms = (perf_ns() - t0) / 1e6
        return TimedOutcome(outcome, client_ms, t_send, time.time())

    def invoke_batch(self, batch: Batch, timeout_s: float, force_cold: bool) -> list[TimedOutcome]:
        """Run a batch on a batch-native target; a target failure becomes failed outcomes."""
        target = self.target
        t_send = time.time()
        t0 = perf_ns()
        try:
            timed = target.invoke_batch(batch.requests, timeout_s=timeout_s, force_cold=force_cold)
        except Exception as exc:  # record every request of the batch as failed and carry on
            log.exception("target %s failed a whole batch", target.name)
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if len(timed) == len(batch.requests):
                return timed
            problem = (
                f"{target.name} returned {len(timed)} outcomes for {len(batch.requests)} requests"
            )
            log.error("%s", problem)
        client_ms = (perf_ns() - t0) / 1e6
        failed = Outcome(response=error_response(PLATFORM_ERROR, problem), cold=False)
        return [TimedOutcome(failed, client_ms, t_send, time.time()) for _ in batch.requests]

    def prepare(
        self, batch: Batch, timeout_s: float, *, tick: bool = True
    ) -> list[InvocationRecord] | None:
        """Set the batch's memory and prepare the target, outside the timing.

        When the memory cannot be set, nothing can run at this size: every request is
        recorded as failed with why (one progress tick each when ``tick``), and those
        records are returned (else None).
        """
        target = self.target
        if batch.memory_mb is not None:
            try:  # reconfigure the function for this size, outside the timing
                target.set_memory(batch.workload, batch.memory_mb)
            except Exception as exc:  # nothing ran at this size: every request fails with why
                log.exception(
                    "%s: cannot set %s to %d MB", target.name, batch.workload, batch.memory_mb
                )
                msg = f"cannot set the memory to {batch.memory_mb} MB: {type(exc).__name__}: {exc}"
                now = time.time()
                recs = []
                for i in range(len(batch.requests)):
                    failed = Outcome(
                        response=error_response(PLATFORM_ERROR, msg),
                        cold=False,
                        memory_mb=batch.memory_mb,
                    )
                    rec = self.record(batch, i, TimedOutcome(failed, 0.0, now, now))
                    self.writer.write(rec)
                    recs.append(rec)
                    if tick and self.progress:
                        self.progress(1)
                return recs
        try:  # platform work for the batch (e.g. retiring warm environments), not timed
            target.prepare_batch(
                batch.workload, force_cold=batch.mode == "cold", timeout_s=timeout_s
            )
        except Exception:  # the invocations will meet the same problem and record it
            log.exception("%s: preparing a %s batch failed", target.name, batch.workload)
        return None


def _json_size(result: Any) -> int | None:
    """The bytes of ``result`` as compact JSON (None for no result, or one that is not JSON)."""
    if result is None:
        return None
    try:
        return len(json.dumps(result, separators=(",", ":")))
    except (TypeError, ValueError):
        return None


def compact(workload: str, result: Any) -> dict[str, Any] | None:
    """The part of a result its workload keeps in the record."""
    if not isinstance(result, dict):
        return None
    return workloads.specs()[workload].compact(result)


def error_type(outcome: Outcome) -> str | None:
    """The contract error type of a failed outcome (None on success)."""
    err = outcome.response.get("error")
    return err.get("type") if isinstance(err, dict) else None


def full_result(outcome: Outcome) -> dict[str, Any] | None:
    """A successful outcome's whole result (before the record's compaction), else None."""
    full = outcome.response.get("result") if outcome.ok else None
    return full if isinstance(full, dict) else None


class Ticker:
    """Moves the progress bar up to a count (a chain's epochs, a training's invocations),
    never back and never past its total, from any thread."""

    def __init__(self, progress: Callable[[int], None] | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def to(self, count: int) -> None:
        """Advance to ``count`` (no-op if already there)."""
        self._step(lambda done: count)

    def add(self, n: int = 1) -> None:
        """Advance by ``n``."""
        self._step(lambda done: done + n)

    def _step(self, new: Callable[[int], int]) -> None:
        with self._lock:
            step = min(new(self.done), self.total) - self.done
            if step <= 0:
                return
            self.done += step
        if self.progress:
            self.progress(step)


def params_of(batch: Batch) -> Mapping[str, Any]:
    """The first request's parameters (a training's whole request)."""
    return batch.requests[0]["params"] if batch.requests else {}
