"""A model, not a measurement: what the run's plan would take and cost on Lambda, fan-out 1..1000.

Per workload and memory size the run measured, a straight line ``handler_ms = a + b * items``
is fitted (least squares) to the warm, successful invocations of the run's function targets
(``local-faas`` limits CPU and memory like a function, which makes them meaningful). For a
fan-out of ``n`` over the workload's input:

* every shard's handler time comes from the line at its item count;
* a cold fan-out adds the profile's platform cold start (by runtime image) plus the run's own
  median ``init_ms`` (the workload's imports and loads, as measured) to each shard;
* each invocation adds the profile's invoke overhead; shards beyond what the concurrency limit
  and the burst rate allow run in later waves (a wave every 10 s at most);
* makespan = the slowest wave's end; cost = Lambda's GB-second price on each shard's billed
  duration (the function's own INIT, i.e. the run's init, included up to its cap; the
  platform's part of a cold start is not billed) plus the per-request price.

A plan that would break a limit (15 minutes, 6 MB payload, memory range, more shards than
items) is flagged and not projected. Where the run has real ``lambda`` batches the projection
is set against them, with its error, so the model can be judged.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from serverless_hpc import workloads
from serverless_hpc.pricing import Prices, lambda_invocation_cost
from serverless_hpc.report.data import RunData
from serverless_hpc.report.profile import PlatformProfile
from serverless_hpc.report.stats import median

#: Fan-outs projected (with the run's own).
FANOUTS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: Which target's real records the projection is judged against.
PROJECTED_TARGET: Final = "lambda"
#: Records whose result is serialised to estimate the response payload per item.
RESULT_SAMPLE: Final = 50


@dataclass(frozen=True, slots=True)
class Fit:
    """``handler_ms = intercept_ms + per_item_ms * items``, from ``n`` invocations."""

    intercept_ms: float
    per_item_ms: float
    n: int
    init_ms: float | None  #: the run's median cold-start init (the workload's own part)
    response_bytes_per_item: float

    def handler_ms(self, items: int) -> float:
        """The modelled handler time of a shard of ``items`` items."""
        return self.intercept_ms + self.per_item_ms * items


def handler_ms(r: Mapping[str, Any]) -> float | None:
    """The time a record spent in the handler: duration, else load + compute, else client."""
    if r.get("duration_ms") is not None:
        return float(r["duration_ms"])
    if r.get("compute_ms") is not None:
        return float(r["compute_ms"]) + float(r.get("load_ms") or 0.0)
    return float(r["client_ms"]) if r.get("client_ms") is not None else None


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` with a, b >= 0; one distinct x: a line through 0."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return (0.0, my / mx) if mx > 0 else (my, 0.0)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    if b < 0:  # more items cannot take less time: the per-item cost is noise
        return my, 0.0
    if a < 0:  # negative overhead: refit through the origin
        return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    return a, b


def _source_records(data: RunData, profile: PlatformProfile) -> list[dict[str, Any]]:
    """The successful function records the model is fitted to: not those taken while this
    machine was oversubscribed (their times measure its contention), unless there is
    nothing else."""
    faas = [r for r in data.records if r["ok"] and profile.kind(r["target"]) == "faas"]
    fair = [r for r in faas if not r.get("oversubscribed")] or faas
    others = [r for r in fair if r["target"] != PROJECTED_TARGET]
    return others or fair


def fits(data: RunData, profile: PlatformProfile) -> dict[tuple[str, int | None], Fit]:
    """One fitted line per (workload, memory_mb) from the run's function records."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for r in _source_records(data, profile):
        mem = r.get("memory_mb")
        groups[(r["workload"], int(mem) if mem is not None else None)].append(r)
    out = {}
    for key, recs in groups.items():
        warm = [r for r in recs if not r["cold"]] or recs
        pts = [(float(r.get("items") or 0), h) for r in warm if (h := handler_ms(r)) is not None]
        if not pts:
            continue
        a, b = fit_line(pts)
        # Response size per item: each record's whole result as the function sent it
        per_item = [
            r["result_bytes"] / r["items"]
            for r in recs
            if isinstance(r.get("result_bytes"), int) and r.get("items")
        ]
        out[key] = Fit(
            intercept_ms=a,
            per_item_ms=b,
            n=len(pts),
            init_ms=median(r.get("init_ms") for r in recs if r["cold"]),
            response_bytes_per_item=max(per_item) if per_item else 0.0,
        )
    return out


def _shard_sizes(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def project(
    *,
    fit: Fit,
    total_items: int,
    fanout: int,
    memory_mb: int,
    cold: bool,
    cold_platform_ms: float,
    profile: PlatformProfile,
    prices: Prices,
    request_bytes: int = 0,
) -> dict[str, Any]:
    """One projected plan: makespan and cost, or the limits it breaks (``flags``).

    ``total_items`` 0 means a workload that is not fanned out (one invocation, fan-out 1).
    """
    lam = profile.lambda_
    flags: list[str] = []
    if total_items and fanout > total_items:
        flags.append(f"{fanout} shards exceed the {total_items} items")
    if not lam.memory_mb_min <= memory_mb <= lam.memory_mb_max:
        flags.append(f"memory {memory_mb} MB outside {lam.memory_mb_min}..{lam.memory_mb_max}")
    if flags:
        return {"fanout": fanout, "memory_mb": memory_mb, "cold": cold, "flags": flags}
    sizes = _shard_sizes(total_items, fanout) if total_items else [0]
    init = (cold_platform_ms + (fit.init_ms or 0.0)) if cold else 0.0
    longest = fit.handler_ms(max(sizes)) + init
    if longest > lam.timeout_s * 1e3:
        flags.append(
            f"a shard would run {longest / 1e3:,.0f} s, "
            f"over the {lam.timeout_s / 60:g}-minute limit"
        )
    response = fit.response_bytes_per_item * max(sizes)
    if max(request_bytes, response) > lam.payload_limit_bytes:
        flags.append(
            f"payload ~{max(request_bytes, response) / 2**20:.1f} MB over the "
            f"{lam.payload_limit_bytes / 2**20:g} MB limit"
        )
    if flags:
        return {"fanout": fanout, "memory_mb": memory_mb, "cold": cold, "flags": flags}
    # Waves: at most `concurrency` run at once, and the burst rate adds environments per 10 s.
    per_wave = min(lam.concurrency_limit, lam.burst_per_10s)
    waves = math.ceil(fanout / per_wave)
    shard_ms = lam.invoke_overhead_ms + longest
    makespan = shard_ms + (waves - 1) * max(shard_ms, 10_000.0)
    # Billed INIT is the function's own initialisation (the run's init_ms), up to its cap; the
    # platform's part (placing the sandbox, fetching the image) happens before it, unbilled.
    billed_init = min(fit.init_ms or 0.0, lam.init_billed_cap_ms) if cold else 0.0
    cost = sum(
        lambda_invocation_cost(
            billed_ms=math.ceil(fit.handler_ms(s) + billed_init),
            memory_mb=memory_mb,
            architecture=lam.architecture,
            prices=prices,
        )
        for s in sizes
    )
    return {
        "fanout": fanout,
        "memory_mb": memory_mb,
        "cold": cold,
        "flags": [],
        "waves": waves,
        "makespan_ms": makespan,
        "cost_usd": cost,
    }


def _request_bytes(data: RunData, workload: str, fanout: int) -> tuple[int, int]:
    """(total items, request bytes) of ``workload`` at ``fanout`` under the run's params."""
    spec = workloads.specs().get(workload)
    params = (data.meta.get("config") or {}).get("params", {}).get(workload, {})
    if spec is None or not spec.fanned_out:
        return 0, len(json.dumps({"workload": workload, "params": params}))
    merged = {**spec.plan_params, **params}
    try:
        total = spec.max_shards(merged) or 0
        one = spec.requests(merged, 1)[0][0]
    except (ValueError, KeyError, TypeError):
        return 0, 0
    return total, len(json.dumps({"workload": workload, "params": one}))


def projection(
    data: RunData, profile: PlatformProfile, prices: Prices, extra_fanouts: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Every projected (workload, memory, fan-out), cold and warm; flagged plans included.

    Fan-outs: :data:`FANOUTS`, the run's own and ``extra_fanouts`` (a what-if's). Worked
    out once per run and inputs (the verdict, its table and the report all ask); each caller
    gets its own copy of the rows."""
    made = data.memo(
        "projection",
        (profile, prices, tuple(extra_fanouts)),
        lambda: _projection(data, profile, prices, extra_fanouts),
    )
    return [dict(p) for p in made]


def _projection(
    data: RunData, profile: PlatformProfile, prices: Prices, extra_fanouts: Sequence[int]
) -> list[dict[str, Any]]:
    out = []
    specs = workloads.specs()
    ran_by_workload: dict[str, set[int]] = defaultdict(set)
    for key in data.index().records:
        ran_by_workload[key[1]].add(key[2])
    for (workload, mem), fit in sorted(fits(data, profile).items(), key=lambda kv: str(kv[0])):
        spec = specs.get(workload)
        memory_mb = mem or (spec.memory_mb if spec else None)
        if memory_mb is None:
            continue
        image = str(spec.image) if spec else "lean"
        cold_ms = profile.lambda_.cold_start_ms.get(
            image, max(profile.lambda_.cold_start_ms.values())
        )
        total, req_bytes = _request_bytes(data, workload, 1)
        ran = ran_by_workload.get(workload, set())
        fanouts = sorted(set(FANOUTS) | ran | set(extra_fanouts)) if total else [1]
        for n in fanouts:
            row: dict[str, Any] = {"workload": workload, "memory_mb_measured": mem, "fit_n": fit.n}
            cold = project(
                fit=fit,
                total_items=total,
                fanout=n,
                memory_mb=memory_mb,
                cold=True,
                cold_platform_ms=cold_ms,
                profile=profile,
                prices=prices,
                request_bytes=req_bytes,
            )
            warm = project(
                fit=fit,
                total_items=total,
                fanout=n,
                memory_mb=memory_mb,
                cold=False,
                cold_platform_ms=cold_ms,
                profile=profile,
                prices=prices,
                request_bytes=req_bytes,
            )
            row.update(
                fanout=n,
                memory_mb=memory_mb,
                flags=cold["flags"],
                cold_makespan_ms=cold.get("makespan_ms"),
                warm_makespan_ms=warm.get("makespan_ms"),
                cold_cost_usd=cold.get("cost_usd"),
                warm_cost_usd=warm.get("cost_usd"),
                waves=cold.get("waves"),
            )
            out.append(row)
    return out


def against_measurement(data: RunData, projected: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Projected against measured makespan for every real ``lambda`` row, with the error."""
    by_key = {(p["workload"], p["memory_mb"], p["fanout"]): p for p in projected}
    spans: dict[tuple[str, int | None, int], list[tuple[float, bool]]] = defaultdict(list)
    recs_by_batch: dict[tuple[str, int, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in data.records:
        if r["target"] == PROJECTED_TARGET:
            recs_by_batch[(r["workload"], r["shards"], r["mode"], r.get("repeat", 0))].append(r)
    for b in data.batches:
        if b["target"] != PROJECTED_TARGET or b["failed"] or not b.get("makespan_ms"):
            continue
        recs = recs_by_batch.get((b["workload"], b["shards"], b["mode"], b.get("repeat", 0)), [])
        mem = median(r.get("memory_mb") for r in recs)
        all_cold = bool(recs) and all(r["cold"] for r in recs)
        key = (b["workload"], int(mem) if mem is not None else None, int(b["shards"]))
        spans[key].append((float(b["makespan_ms"]), all_cold))
    out = []
    for (workload, mem, n), vals in sorted(spans.items(), key=lambda kv: str(kv[0])):
        p = by_key.get((workload, mem, n))
        if p is None or p["flags"]:
            continue
        for cold in (True, False):
            measured = [v for v, c in vals if c == cold]
            proj = p["cold_makespan_ms"] if cold else p["warm_makespan_ms"]
            if not measured or proj is None:
                continue
            m = statistics.median(measured)
            out.append(
                {
                    "workload": workload,
                    "memory_mb": mem,
                    "fanout": n,
                    "cold": cold,
                    "batches": len(measured),
                    "measured_ms": m,
                    "projected_ms": proj,
                    "error_pct": (proj - m) / m * 100 if m else None,
                }
            )
    return out
