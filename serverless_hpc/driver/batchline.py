"""The batch line: what ``batches.jsonl`` says of one batch once it finished.

Measurements only (makespan, counts, the memory size, what the spec's ``combine`` makes of
the results, a training's totals); statistics over batches are the report's.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from serverless_hpc import chain, workloads
from serverless_hpc.driver.lifecycle import delete_scratch
from serverless_hpc.driver.plan import Batch
from serverless_hpc.rundir import InvocationRecord
from serverless_hpc.targets.base import Target

log = logging.getLogger(__name__)


def batch_summary(
    batch: Batch, records: Sequence[InvocationRecord], results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Makespan and the combined result of one fan-out batch.

    ``results`` are the successful invocations' full results (before the record's
    compaction); the workload's spec combines them.
    """
    ok = [r for r in records if r.ok]
    sizes = {r.outcome.memory_mb for r in records}
    memory_mb = batch.memory_mb
    if memory_mb is None and len(sizes) == 1:
        memory_mb = next(iter(sizes))  # the target's own setting, as it reported it
    flags = [r.outcome.oversubscribed for r in records if r.outcome.oversubscribed is not None]
    out: dict[str, Any] = {
        "run_id": records[0].run_id if records else None,
        "target": batch.target,
        "workload": batch.workload,
        "memory_mb": memory_mb,
        "oversubscribed": any(flags) if flags else None,
        "shards": batch.shards,
        "workers": batch.workers,
        "repeat": batch.repeat,
        "mode": batch.mode,
        "invocations": len(records),
        "failed": len(records) - len(ok),
        "items": sum(batch.items),
        "makespan_ms": (max(r.t_recv for r in records) - min(r.t_send for r in records)) * 1e3
        if records
        else None,
        "straggler_ratio": straggler_ratio([r.client_ms for r in ok]),
    }
    spec = workloads.specs()[batch.workload]
    if results and (len(ok) == len(records) or not spec.combine_needs_all):
        try:
            out.update(spec.combine(results))
        except (ValueError, KeyError, TypeError) as exc:  # a malformed result: say so, go on
            log.exception("%s %s batch could not be combined", batch.target, batch.workload)
            out["combine_error"] = f"{type(exc).__name__}: {exc}"
    return out


def straggler_ratio(latencies_ms: Sequence[float]) -> float | None:
    """The slowest invocation over the median one (1.0: no straggler); None below 2 values."""
    if len(latencies_ms) < 2:
        return None
    median = statistics.median(latencies_ms)
    return max(latencies_ms) / median if median > 0 else None


def training_summary(
    recs: Sequence[InvocationRecord], results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A chain's or data-parallel training's totals (legs, billed time and cost, where every
    invocation has them) and its final result's progress entries, as the function wrote them."""
    costs = [r.outcome.cost_usd for r in recs]
    billed = [r.outcome.billed_ms for r in recs]
    out: dict[str, Any] = {
        "legs": sum(1 for r in recs if r.role != "worker"),
        "cost_usd": sum(c for c in costs if c is not None)
        if all(c is not None for c in costs) and costs
        else None,
        "billed_ms": sum(b for b in billed if b is not None)
        if all(b is not None for b in billed) and billed
        else None,
    }
    last = next((r for r in reversed(recs) if r.ok and r.role != "worker"), None)
    full = results[0] if results else (last.outcome.response.get("result") if last else None)
    if isinstance(full, Mapping) and isinstance(full.get("progress"), list):
        # the function's own entries; time and cost to accuracy are the report's to derive
        out["progress"] = full["progress"]
    return out


def clean_scratch(target: Target, batch: Batch, results: Sequence[Mapping[str, Any]]) -> None:
    """Delete a finished training's checkpoints (kept after a failure, to resume from).

    The prefix is the one the driver gave the chain, never one a response names: a reply
    cannot make the driver delete anything else in the store.
    """
    params = batch.requests[0]["params"] if batch.requests else {}
    said = results[0].get("scratch") if results else None
    if not isinstance(said, str) or "chain" not in params or "model" not in params:
        return
    prefix = chain.scratch_prefix(str(params["model"]), str(params["chain"]))
    if said != prefix:
        log.warning(
            "%s: a training reported checkpoints under %r, not %r: left in place",
            target.name,
            said,
            prefix,
        )
        return
    delete_scratch(target, prefix, "checkpoint")
