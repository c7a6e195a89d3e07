"""Both sides of the cloud question, calibrated on this run: functions (Lambda) or a VM (EC2).

A model, labelled as one wherever its figures appear. Per workload, at an arrival rate of
jobs per hour:

**Functions.** Every plan :mod:`.projection` can make from the run's function records
(per-shard times fitted at each measured memory size, fan-outs 1..1000 within Lambda's
limits; a workload that is not fanned out, such as a training, as the run measured it on a
function target), its time and cost cold and warm. With Poisson arrivals, a job starts cold
when no job came within the keep-alive window before it: probability
``exp(-rate * keep_alive)`` (profile). The plan shown is the *balanced* one: the lowest
product of expected cost and time, each relative to the best. Real ``lambda`` rows of the
run are used as they are, marked measured.

**A VM.** The fastest job the run measured on a VM target (``standalone``, the emulated VM,
confined to ``V`` vCPUs; or ``ec2``, a real one). The job's CPU is taken as ``V x time``
(an upper bound: records carry no CPU counters). On each catalogue type with ``v`` vCPUs
it runs ``width = min(v, max(V, shards))`` wide. Two ways to run it:

* *always on*: ``k`` instances (enough to stay at most 70% busy) serve the average demand
  ``rate x CPU``; cost per job = their hourly price plus surplus credits
  (:func:`~serverless_hpc.pricing.steady_load`) over the rate; time = the job's time plus an
  M/D/1 queueing wait (the instance as one server doing a job's CPU on all its vCPUs);
* *started per job*: boot (a sourced typical figure) plus the job, billed per second with
  the 60 s minimum, surplus credits or standard-mode throttling from
  :func:`~serverless_hpc.pricing.burstable_run`.

Both sides' times are divided by the workload's speed factor (profile; 1.0 where unknown,
and said). The verdict per workload is the cheaper side per job at the rate, with both
sides' time to result and cost, and the rate where the answer changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from serverless_hpc import workloads
from serverless_hpc.pricing import (
    CREDIT_MODES,
    InstanceType,
    Prices,
    burstable_run,
    ec2_cost,
    steady_load,
)
from serverless_hpc.report import projection
from serverless_hpc.report.data import RunData
from serverless_hpc.report.profile import PlatformProfile
from serverless_hpc.report.stats import median

MODEL: Final = "model"
MEASURED: Final = "measured"
#: The rates the verdict answers for when none is given (jobs per hour).
DEFAULT_RATES: Final = (1.0, 1000.0)
#: Rates searched for the one where the answer changes.
SEARCH_RATES: Final = (0.01, 1e6)
#: An always-on fleet grows before its instances are busier than this (queues explode at 1).
MAX_UTILISATION: Final = 0.7
MAX_RATE: Final = 1e7


class OptionError(ValueError):
    """A what-if setting is out of range; the message names it."""


def parse_rate(text: str) -> tuple[float, float]:
    """``"10"`` or ``"1-1000"`` jobs per hour as (low, high); :class:`OptionError` if bad."""
    parts = text.strip().split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(0 < v <= MAX_RATE for v in values):
        raise OptionError(
            f"--jobs-per-hour: {text!r} is not a rate or a range of rates "
            f"(e.g. 10 or 1-1000; each > 0 and <= {MAX_RATE:g})"
        )
    lo, hi = values[0], values[-1]
    if lo > hi:
        raise OptionError(f"--jobs-per-hour: the range {text!r} runs backwards")
    return lo, hi


@dataclass(frozen=True, slots=True)
class Options:
    """What-if settings: the arrival rate (a value or a range) and optional pins."""

    rates: tuple[float, float] = DEFAULT_RATES
    fanout: int | None = None
    memory_mb: int | None = None
    instance: str | None = None
    credit_mode: str | None = None  #: None: the profile's

    @property
    def reference_rate(self) -> float:
        """The rate the figures are quoted at: the value, or the top of the range."""
        return self.rates[1]


DEFAULT_OPTIONS: Final = Options()


@dataclass(frozen=True, slots=True)
class FaasPlan:
    """One function configuration of a job: time and cost cold and warm."""

    workload: str
    memory_mb: int
    fanout: int
    cold_ms: float
    warm_ms: float
    cold_usd: float
    warm_usd: float
    basis: str  #: ``model`` or ``measured``
    source: str  #: what it was calibrated on

    def at(self, rate: float, keep_alive_s: float) -> tuple[float, float, float]:
        """(expected time ms, cost USD, probability of a cold start) at ``rate`` jobs/hour."""
        if self.basis == MEASURED:
            return self.warm_ms, self.warm_usd, 0.0
        p = math.exp(-rate * keep_alive_s / 3600.0)
        return (
            p * self.cold_ms + (1 - p) * self.warm_ms,
            p * self.cold_usd + (1 - p) * self.warm_usd,
            p,
        )

    def label(self) -> str:
        """E.g. ``Lambda 2048 MB x 10``."""
        return f"Lambda {self.memory_mb} MB x {self.fanout}"


@dataclass(frozen=True, slots=True)
class VmJob:
    """A job as measured on a VM target: its time on ``vcpus`` vCPUs of the machine."""

    workload: str
    target: str
    shards: int
    time_ms: float
    vcpus: float
    rss_mb: float | None
    instance: str | None  #: the real instance type (``ec2``), None for the emulation

    @property
    def basis(self) -> str:
        """``measured`` on a real instance, else ``model``."""
        return MEASURED if self.instance else MODEL


@dataclass(slots=True)
class Side:
    """One side's answer at a rate: which configuration, time to result, cost per job."""

    config: str
    time_ms: float
    cost_usd: float
    time_basis: str
    cost_basis: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "config": self.config,
            "time_to_result_ms": self.time_ms,
            "cost_per_job_usd": self.cost_usd,
            "time_basis": self.time_basis,
            "cost_basis": self.cost_basis,
            **self.detail,
        }


# -- functions -------------------------------------------------------------------------------


def _lambda_cpus(memory_mb: float) -> float:
    return min(memory_mb / 1769.0, 6.0)


def faas_plans(
    data: RunData,
    configs: Sequence[dict[str, Any]],
    profile: PlatformProfile,
    prices: Prices,
    opts: Options | None = None,
) -> dict[str, list[FaasPlan]]:
    """Every function plan per workload (see the module docstring); pinned by ``opts``.
    Worked out once per run and inputs; each caller gets its own lists."""
    opts = opts or DEFAULT_OPTIONS
    made = data.memo(
        "faas_plans",
        (configs, profile, prices, opts),
        lambda: _faas_plans(data, configs, profile, prices, opts),
    )
    return {workload: list(plans) for workload, plans in made.items()}


def _faas_plans(
    data: RunData,
    configs: Sequence[dict[str, Any]],
    profile: PlatformProfile,
    prices: Prices,
    opts: Options,
) -> dict[str, list[FaasPlan]]:
    out: dict[str, list[FaasPlan]] = {}
    extra = (opts.fanout,) if opts.fanout else ()
    for p in projection.projection(data, profile, prices, extra):
        if p["flags"] or p["cold_makespan_ms"] is None:
            continue
        speed, _ = profile.speed(p["workload"])
        out.setdefault(p["workload"], []).append(
            FaasPlan(
                workload=p["workload"],
                memory_mb=int(p["memory_mb"]),
                fanout=int(p["fanout"]),
                cold_ms=p["cold_makespan_ms"] / speed,
                warm_ms=p["warm_makespan_ms"] / speed,
                cold_usd=p["cold_cost_usd"] / speed,
                warm_usd=p["warm_cost_usd"] / speed,
                basis=MODEL,
                source="projection from the run's function records",
            )
        )
    specs = workloads.specs()
    longest: dict[tuple[str, str, int], float] = {}
    for key, group in data.index().records.items():
        k = (key[0], key[1], key[2])
        for r in group:
            h = projection.handler_ms(r) if r["ok"] else None
            if h is not None and h > longest.get(k, 0.0):
                longest[k] = h
    for c in configs:
        if c["kind"] != "faas" or c["time_ms"] is None or c["cost_usd"] is None:
            continue
        spec = specs.get(c["workload"])
        measured = c["target"] == projection.PROJECTED_TARGET and c["cost_basis"] == MEASURED
        if not measured and spec is not None and spec.fanned_out:
            continue  # the projection covers it, at every fan-out
        memory = int(c["memory_mb"] or (spec.memory_mb if spec else 2048))
        speed, _ = profile.speed(c["workload"])
        one = longest.get((c["target"], c["workload"], int(c["shards"])), 0.0)
        if not measured and one / speed > profile.lambda_.timeout_s * 1e3:
            continue  # an invocation would outlast Lambda's time limit
        factor = 1.0 if measured else 1.0 / speed
        image = str(spec.image) if spec else "lean"
        cold_extra = 0.0 if measured else profile.lambda_.cold_start_ms.get(image, 0.0)
        out.setdefault(c["workload"], []).append(
            FaasPlan(
                workload=c["workload"],
                memory_mb=memory,
                fanout=int(c["shards"]),
                cold_ms=c["time_ms"] * factor + cold_extra,
                warm_ms=c["time_ms"] * factor,
                cold_usd=c["cost_usd"] * factor,
                warm_usd=c["cost_usd"] * factor,
                basis=MEASURED if measured else MODEL,
                source=f"{c['key']} ({c['cost_basis']})",
            )
        )
    return {w: _pinned(plans, opts) for w, plans in out.items()}


def _pinned(plans: list[FaasPlan], opts: Options) -> list[FaasPlan]:
    """The plans matching ``opts``' fan-out and memory; another memory size is scaled from
    the nearest measured one by Lambda's CPU share, with no gain assumed beyond one vCPU or
    the measured share (a workload's parallelism is not known)."""
    if opts.fanout is not None and any(p.fanout > 1 for p in plans):  # fanned out
        plans = [p for p in plans if p.fanout == opts.fanout]
    if opts.memory_mb is not None and plans:
        same = [p for p in plans if p.memory_mb == opts.memory_mb]
        if same:
            return same
        target = opts.memory_mb
        nearest = min({p.memory_mb for p in plans}, key=lambda m: abs(m - target))
        have = _lambda_cpus(nearest)
        gets = min(_lambda_cpus(target), max(have, 1.0))
        slow = have / gets
        money = target / nearest * slow
        return [
            replace(
                p,
                memory_mb=target,
                cold_ms=p.cold_ms * slow,
                warm_ms=p.warm_ms * slow,
                cold_usd=p.cold_usd * money,
                warm_usd=p.warm_usd * money,
                basis=MODEL,
                source=f"{p.source}, scaled from {nearest} MB",
            )
            for p in plans
            if p.memory_mb == nearest
        ]
    return plans


def best_faas(plans: Sequence[FaasPlan], rate: float, keep_alive_s: float) -> Side | None:
    """The balanced plan at ``rate``: lowest (cost / cheapest) x (time / fastest)."""
    scored = [(p, *p.at(rate, keep_alive_s)) for p in plans]
    if not scored:
        return None
    fastest = min(s[1] for s in scored) or 1e-9
    cheapest = min(s[2] for s in scored) or 1e-12
    plan, t, c, p_cold = min(scored, key=lambda s: (s[2] / cheapest) * (s[1] / fastest))
    return Side(
        config=plan.label(),
        time_ms=t,
        cost_usd=c,
        time_basis=plan.basis,
        cost_basis=plan.basis,
        detail={
            "memory_mb": plan.memory_mb,
            "fanout": plan.fanout,
            "cold_probability": p_cold,
            "source": plan.source,
        },
    )


# -- a VM ------------------------------------------------------------------------------------


def vm_vcpus(data: RunData, target: str) -> float:
    """The vCPUs a VM target's jobs ran on: run.json's description of the target (the
    ``vcpus`` it enforced, else its pool size), else the machine's CPU count. (A record's
    ``resources`` say the same per invocation; the report's rows do not keep them.)"""
    described = (data.meta.get("targets") or {}).get(target) or {}
    env = data.meta.get("environment") or {}
    for value in (described.get("vcpus"), described.get("workers"), env.get("cpu_count")):
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return 1.0


def vm_jobs(
    data: RunData, configs: Sequence[dict[str, Any]], profile: PlatformProfile, prices: Prices
) -> dict[str, VmJob]:
    """Per workload, the fastest job measured on a VM target (a real ``ec2`` one first);
    worked out once per run and inputs."""
    made = data.memo(
        "vm_jobs", (configs, profile, prices), lambda: _vm_jobs(data, configs, profile, prices)
    )
    return dict(made)


def _vm_jobs(
    data: RunData, configs: Sequence[dict[str, Any]], profile: PlatformProfile, prices: Prices
) -> dict[str, VmJob]:
    index = data.index()
    out: dict[str, VmJob] = {}
    ec2_type = str(((data.meta.get("targets") or {}).get("ec2") or {}).get("instance_type"))
    ranked = sorted(
        (c for c in configs if c["kind"] == "vm" and c["time_ms"] is not None),
        key=lambda c: (c["target"] != "ec2", c["time_ms"]),
    )
    for c in ranked:
        if c["workload"] in out:
            continue
        recs = [
            r
            for key, group in index.records.items()
            if key[:2] == (c["target"], c["workload"])
            for r in group
            if r["ok"]
        ]
        real = c["target"] == "ec2" and ec2_type in prices.ec2.instances
        vcpus = prices.ec2.instances[ec2_type].vcpus if real else vm_vcpus(data, c["target"])
        out[c["workload"]] = VmJob(
            workload=c["workload"],
            target=c["target"],
            shards=int(c["shards"]),
            time_ms=float(c["time_ms"]),
            vcpus=float(vcpus),
            rss_mb=median(r.get("max_rss_mb") for r in recs),
            instance=ec2_type if real else None,
        )
    return out


def vm_side(
    job: VmJob,
    itype: InstanceType,
    rate: float,
    *,
    mode: str,
    speed: float,
    prices: Prices,
) -> list[Side]:
    """The job on ``itype`` at ``rate``: always on and started per job (flagged ones too,
    with ``flags`` in the detail)."""
    same = job.instance == itype.name
    speed = 1.0 if job.instance else speed
    cpu_s = job.vcpus * job.time_ms / 1e3 / speed
    width = min(float(itype.vcpus), job.vcpus if job.shards <= 1 else max(job.vcpus, job.shards))
    service_s = cpu_s / width
    basis = MEASURED if same else MODEL
    flags = []
    if job.rss_mb and job.rss_mb * min(width, max(1, job.shards)) > itype.memory_gib * 1024:
        flags.append(f"needs ~{job.rss_mb * width / 1024:.1f} GiB, has {itype.memory_gib:g}")
    common = {"instance": itype.name, "credit_mode": mode if itype.burst else None}
    # Always on: enough instances to stay under MAX_UTILISATION busy.
    demand = rate * cpu_s / 3600.0
    capacity = steady_load(itype, demand_vcpus=0.0, mode=mode).capacity_vcpus
    fleet = max(1, math.ceil(demand / (MAX_UTILISATION * capacity)))
    load = steady_load(itype, demand_vcpus=demand / fleet, mode=mode)
    rho = load.utilisation
    whole_s = cpu_s / load.capacity_vcpus  # the job's CPU on all the instance can sustain
    wait_s = rho * whole_s / (2 * (1 - rho)) if rho < 1 else math.inf
    always = Side(
        config=f"{fleet} x {itype.name} always on" if fleet > 1 else f"{itype.name} always on",
        time_ms=(service_s * load.slowdown + wait_s) * 1e3,
        cost_usd=fleet * load.usd_per_hour / rate,
        time_basis=basis if fleet == 1 and rho < 0.05 else MODEL,
        cost_basis=MODEL,
        detail={
            **common,
            "placement": "always on",
            "instances": fleet,
            "utilisation": rho,
            "surplus_usd_per_hour": fleet * load.surplus_usd_per_hour,
            "flags": list(flags),
        },
    )
    boot = prices.ec2.boot_to_ready_s
    run = burstable_run(itype, vcpu_seconds=cpu_s, parallelism=width, mode=mode, idle_s=boot)
    per_job = Side(
        config=f"{itype.name} started per job",
        time_ms=(boot + run.wall_s) * 1e3,
        cost_usd=ec2_cost(up_s=boot + run.wall_s, instance_type=itype.name, prices=prices)
        + run.surplus_usd,
        time_basis=MODEL,
        cost_basis=MODEL,
        detail={
            **common,
            "placement": "started per job",
            "boot_s": boot,
            "throttled": run.throttled,
            "surplus_usd": run.surplus_usd,
            "flags": list(flags),
        },
    )
    return [always, per_job]


def best_vm(
    job: VmJob, rate: float, *, prices: Prices, profile: PlatformProfile, opts: Options
) -> Side | None:
    """The cheapest VM way to run ``job`` at ``rate`` (ties: the faster), unflagged."""
    mode = opts.credit_mode or profile.vm_credit_mode
    speed, _ = profile.speed(job.workload)
    names = [opts.instance] if opts.instance else sorted(prices.ec2.instances)
    sides = [
        s
        for name in names
        for s in vm_side(
            job, prices.ec2.instances[name], rate, mode=mode, speed=speed, prices=prices
        )
        if not s.detail["flags"]
    ]
    return min(sides, key=lambda s: (s.cost_usd, s.time_ms)) if sides else None


def check_options(opts: Options, prices: Prices, profile: PlatformProfile) -> None:
    """:class:`OptionError` naming a what-if setting out of range."""
    lam = profile.lambda_
    if opts.instance is not None and opts.instance not in prices.ec2.instances:
        raise OptionError(
            f"--instance: {opts.instance!r} is not in the catalogue "
            f"(known: {', '.join(sorted(prices.ec2.instances))})"
        )
    if opts.memory_mb is not None and not lam.memory_mb_min <= opts.memory_mb <= lam.memory_mb_max:
        raise OptionError(
            f"--memory-mb must be {lam.memory_mb_min}..{lam.memory_mb_max}, got {opts.memory_mb}"
        )
    if opts.fanout is not None and not 1 <= opts.fanout <= max(projection.FANOUTS):
        raise OptionError(f"--fanout must be 1..{max(projection.FANOUTS)}, got {opts.fanout}")
    if opts.credit_mode is not None and opts.credit_mode not in CREDIT_MODES:
        raise OptionError(f"--credit-mode must be one of {', '.join(CREDIT_MODES)}")
