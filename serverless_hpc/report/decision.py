"""The FaaS-versus-VM decision: cost per job, time to result, break-even rate, Pareto front.

A *configuration* is a summary row in natural mode (target x workload x fan-out; its memory
is the records'). Its cost per job is *measured* when its records carry ``cost_usd`` (the
cloud targets price their own invocations); otherwise it is a labelled *model*: Lambda's
prices applied to the measured handler durations for a function target, the VM's hourly price
times the time to result for a VM target, plus the surplus CPU credits a burstable type pays
in unlimited mode for a job that keeps its vCPUs above the baseline (or the longer time it is
throttled to in standard mode) (the profile says which target is which and the credit mode).

Break-even: a VM that is always on costs its hourly price whatever it does; functions cost
per job. Above ``hourly / cost_per_job`` jobs per hour the VM is cheaper. The 95% CI comes
from a bootstrap of the median cost per job over the configuration's jobs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from serverless_hpc import workloads
from serverless_hpc.pricing import (
    PriceError,
    Prices,
    break_even_table,
    burstable_run,
    ec2_hourly,
    lambda_invocation_cost,
)
from serverless_hpc.report.cloud import vm_vcpus
from serverless_hpc.report.data import RunData
from serverless_hpc.report.profile import PlatformProfile
from serverless_hpc.report.projection import handler_ms
from serverless_hpc.report.stats import bootstrap_median_ci, median
from serverless_hpc.report.tables import RowKey, key_label, row_key, time_to_result_ms

MEASURED = "measured"


LAMBDA_MODEL = "model: Lambda prices x measured durations"


def modelled_lambda_cost(r: Mapping[str, Any], prices: Prices, profile: PlatformProfile) -> float:
    """One record's cost as a Lambda invocation would bill it: its measured handler time (plus
    its init, capped as Lambda caps it, when cold) at its memory size. A model, not a bill."""
    spec = workloads.specs().get(r["workload"])
    memory = r.get("memory_mb") or (spec.memory_mb if spec else 2048)
    h = handler_ms(r) or 0.0
    init = min(float(r.get("init_ms") or 0.0), profile.lambda_.init_billed_cap_ms)
    return lambda_invocation_cost(
        billed_ms=math.ceil(h + (init if r["cold"] else 0.0)),
        memory_mb=int(memory),
        architecture=profile.lambda_.architecture,
        prices=prices,
    )


def vm_hourly_usd(profile: PlatformProfile, prices: Prices) -> float | None:
    """The hourly price of the profile's VM type, or None when the price list lacks it."""
    try:
        return ec2_hourly(profile.vm_instance_type, prices)
    except PriceError:
        return None


def vm_cost(hourly_usd: float, seconds: float) -> float:
    """What a VM billed by the hour costs for ``seconds`` of uptime (a model: per-second
    billing, no minimum, whatever runs on it meanwhile)."""
    return hourly_usd * seconds / 3600.0


def vm_job_cost(
    hourly_usd: float, seconds: float, vcpus: float, prices: Prices, profile: PlatformProfile
) -> tuple[float, str]:
    """One job's modelled cost on the profile's VM type, and its basis: the hourly price for
    the job's time (throttled in standard mode) plus surplus credits in unlimited mode, the
    job keeping ``vcpus`` busy (the VM target's vCPUs: an upper bound). Without a catalogue
    entry for the type, the hourly price times the time."""
    itype = prices.ec2.instances.get(profile.vm_instance_type)
    basis = f"model: {profile.vm_instance_type} hourly price x time to result"
    if itype is None or itype.burst is None or vcpus <= 0:
        return vm_cost(hourly_usd, seconds), basis
    mode = profile.vm_credit_mode
    run = burstable_run(itype, vcpu_seconds=vcpus * seconds, parallelism=vcpus, mode=mode)
    return vm_cost(hourly_usd, run.wall_s) + run.surplus_usd, f"{basis} + CPU credits ({mode})"


def job_costs(
    data: RunData, prices: Prices, profile: PlatformProfile
) -> dict[RowKey, tuple[list[float], str]]:
    """Per row: each complete job's cost and the basis (measured, or which model)."""
    return data.memo("job_costs", (prices, profile), lambda: _job_costs(data, prices, profile))


def _job_costs(
    data: RunData, prices: Prices, profile: PlatformProfile
) -> dict[RowKey, tuple[list[float], str]]:
    index = data.index()
    spans = {
        job: float(b["makespan_ms"]) for job, b in index.batch_of.items() if b.get("makespan_ms")
    }
    vm_hourly = vm_hourly_usd(profile, prices)
    vcpus: dict[str, float] = {}
    out: dict[RowKey, tuple[list[float], str]] = {}
    for (key, repeat), recs in index.jobs.items():
        if not all(r["ok"] for r in recs):
            continue  # a failed job has no result: its cost is not the cost of a job
        kind = profile.kind(key[0])
        if all(r.get("cost_usd") is not None for r in recs):
            cost, basis = sum(float(r["cost_usd"]) for r in recs), MEASURED
        elif kind == "faas":
            cost = sum(modelled_lambda_cost(r, prices, profile) for r in recs)
            basis = LAMBDA_MODEL
        elif kind == "vm" and vm_hourly is not None:
            span = spans.get((key, repeat))
            if span is None:
                continue
            if key[0] not in vcpus:
                vcpus[key[0]] = vm_vcpus(data, key[0])
            cost, basis = vm_job_cost(vm_hourly, span / 1e3, vcpus[key[0]], prices, profile)
        else:
            continue
        costs, _ = out.setdefault(key, ([], basis))
        costs.append(cost)
    return out


def configurations(
    data: RunData, rows: Sequence[dict[str, Any]], prices: Prices, profile: PlatformProfile
) -> list[dict[str, Any]]:
    """Every natural-mode row with its time to result, cost per job and Pareto membership."""
    costs = job_costs(data, prices, profile)
    out = []
    for row in rows:
        if row["mode"] != "natural":
            continue
        key = row_key(row)
        job, basis = costs.get(key, ([], ""))
        out.append(
            {
                "key": key_label(key),
                "target": row["target"],
                "workload": row["workload"],
                "shards": row["shards"],
                "memory_mb": row.get("memory_mb"),
                "kind": profile.kind(row["target"]),
                "time_ms": time_to_result_ms(row),
                "cost_usd": median(job),
                "cost_basis": basis,
                "jobs": len(job),
                "job_costs": job,
            }
        )
    mark_pareto(out)
    return out


def mark_pareto(points: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on each point: True when no other point of its workload is at least as
    fast and as cheap and strictly better in one (points without both figures: False)."""
    for p in points:
        p["pareto"] = False
        if p["time_ms"] is None or p["cost_usd"] is None:
            continue
        p["pareto"] = not any(
            q is not p
            and q["workload"] == p["workload"]
            and q["time_ms"] is not None
            and q["cost_usd"] is not None
            and q["time_ms"] <= p["time_ms"]
            and q["cost_usd"] <= p["cost_usd"]
            and (q["time_ms"] < p["time_ms"] or q["cost_usd"] < p["cost_usd"])
            for q in points
        )


def break_even(configs: Sequence[dict[str, Any]], prices: Prices) -> list[dict[str, Any]]:
    """Per function configuration and instance type: jobs/hour above which the VM is cheaper."""
    out = []
    for c in configs:
        if c["kind"] != "faas" or not c["cost_usd"]:
            continue
        ci = bootstrap_median_ci(c["job_costs"])
        for itype in sorted(prices.ec2.on_demand_hourly):
            hourly = ec2_hourly(itype, prices)
            out.append(
                {
                    "key": c["key"],
                    "workload": c["workload"],
                    "cost_basis": c["cost_basis"],
                    "cost_usd": c["cost_usd"],
                    "instance_type": itype,
                    "instance_hourly_usd": hourly,
                    "break_even_per_hour": hourly / c["cost_usd"],
                    # A higher cost per job means a lower break-even rate: the bounds swap.
                    "ci95_low": hourly / ci[1] if ci and ci[1] else None,
                    "ci95_high": hourly / ci[0] if ci and ci[0] else None,
                    "jobs": c["jobs"],
                }
            )
    return out


def per_invocation_break_even(data: RunData, prices: Prices) -> list[dict[str, Any]]:
    """The per-invocation table of priced ``lambda`` records (median cost), with a bootstrap CI,
    against the ``ec2`` target's instance (or the comparison default) and every priced type."""
    ec2 = (data.meta.get("targets") or {}).get("ec2") or {}
    root = float(ec2.get("root_volume_gb") or 0)
    types = [ec2.get("instance_type") or "t3.xlarge"]
    types += [t for t in sorted(prices.ec2.on_demand_hourly) if t not in types]
    rows: list[dict[str, Any]] = []
    for itype in types:
        for r in break_even_table(
            data.records, prices=prices, instance_type=itype, root_volume_gb=root
        ):
            basis = [
                float(x["cost_usd"])
                for x in data.records
                if x["target"] == "lambda"
                and x["workload"] == r["workload"]
                and x["ok"]
                and x.get("cost_usd") is not None
                and (not x["cold"] or r["basis"] == "all")
            ]
            ci = bootstrap_median_ci(basis)
            hourly = r["instance_hourly_usd"]
            r["ci95_low"] = hourly / ci[1] if ci and ci[1] else None
            r["ci95_high"] = hourly / ci[0] if ci and ci[0] else None
            rows.append(r)
    return rows
