"""Prices and cost formulas for the AWS targets: pure functions of numbers, no I/O.

The prices themselves live in one data file (``prices.json``, with their date and region) and
are read by :mod:`serverless_hpc.pricing_data`; this module only turns a parsed
:class:`Prices` and measured quantities into dollars, so every formula is testable with
hand-written numbers and the report can price records without touching the network or disk.

Billing rules modelled (as AWS documents them):

* **Lambda**: GB-seconds of *billed* duration (1 ms granularity) at the architecture's rate,
  plus a per-request charge. For container-image functions the REPORT line's Billed Duration
  already includes the INIT phase, so the caller passes it unchanged; nothing is added twice.
  Ephemeral storage above the free 512 MB is billed per GB-second as well.
* **S3**: per request (GET-class and PUT-class); storage for a benchmark run is negligible.
* **EC2**: per-second billing with a 60-second minimum for every period the instance runs,
  at the on-demand hourly rate, plus the root volume (gp3, per GB-month, prorated).
* **Burstable EC2 (T3)**: each vCPU has a baseline (a fraction of a vCPU) and earns CPU
  credits at that rate. In *unlimited* mode (T3's default) CPU above the baseline, averaged
  over the instance's running time, is charged as surplus credits per vCPU-hour; in
  *standard* mode the instance is throttled to the baseline once its credits are spent.
  :func:`burstable_run` models both from the CPU time the work needs (see its docstring).

This module imports nothing from the project (see docs/design.md, "The layers").
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SECONDS_PER_HOUR: Final = 3600.0
#: AWS prices EBS per GB-month with a 730-hour month.
SECONDS_PER_MONTH: Final = 730.0 * 3600.0
ARCHITECTURES: Final = ("x86_64", "arm64")


class PriceError(ValueError):
    """The price data is malformed or lacks a price that a formula needs."""


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceError(f"{what} must be a non-negative number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class LambdaPrices:
    """Lambda compute (per GB-second by architecture), request and ephemeral storage prices."""

    gb_second: Mapping[str, float]
    request: float
    ephemeral_gb_second: float = 0.0
    free_ephemeral_mb: int = 512


@dataclass(frozen=True, slots=True)
class S3Prices:
    """S3 request prices (per single request, not per thousand)."""

    get_request: float
    put_request: float


#: The credit modes of a burstable instance (T3 launches in ``unlimited`` by default).
CREDIT_MODES: Final = ("unlimited", "standard")


@dataclass(frozen=True, slots=True)
class Burst:
    """A burstable type's CPU credit terms.

    ``baseline_per_vcpu`` is the fraction of each vCPU the instance may use without spending
    credits (0.4 = 40%); ``credits_per_hour`` the credits it earns (one credit = one vCPU at
    100% for one minute, so ``credits_per_hour = vcpus * baseline * 60``); ``surplus_vcpu_hour``
    the price of a vCPU-hour above the baseline in unlimited mode.
    """

    baseline_per_vcpu: float
    credits_per_hour: float
    surplus_vcpu_hour: float


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One catalogue entry: size, on-demand price and (burstable types) the credit terms."""

    name: str
    vcpus: int
    memory_gib: float
    hourly: float
    burst: Burst | None = None


@dataclass(frozen=True, slots=True)
class Ec2Prices:
    """EC2 on-demand hourly prices by instance type, billing minimum and gp3 storage price.

    ``instances`` is the catalogue (sizes, credit terms); ``on_demand_hourly`` holds the
    same hourly prices by name (and is all an older price file has). ``boot_to_ready_s`` is
    a typical time from launch to a VM ready to work (a sourced figure, not measured here).
    """

    on_demand_hourly: Mapping[str, float]
    billing_minimum_s: float = 60.0
    ebs_gp3_gb_month: float = 0.0
    instances: Mapping[str, InstanceType] = field(default_factory=dict)
    boot_to_ready_s: float = 0.0


def _instances(raw: Mapping[str, Any]) -> dict[str, InstanceType]:
    """Parse ``ec2.instances`` (see ``prices.json``); :class:`PriceError` names a bad field."""
    surplus = raw.get("unlimited_surplus_vcpu_hour")
    out = {}
    for name, spec in dict(raw.get("instances") or {}).items():
        where = f"ec2.instances.{name}"
        burst = None
        if spec.get("baseline_per_vcpu") is not None:
            baseline = _positive(spec["baseline_per_vcpu"], f"{where}.baseline_per_vcpu")
            if not 0 < baseline <= 1:
                raise PriceError(f"{where}.baseline_per_vcpu must be in (0, 1], got {baseline}")
            if surplus is None:
                raise PriceError("ec2.unlimited_surplus_vcpu_hour is needed by burstable types")
            burst = Burst(
                baseline_per_vcpu=baseline,
                credits_per_hour=_positive(spec["credits_per_hour"], f"{where}.credits_per_hour"),
                surplus_vcpu_hour=_positive(surplus, "ec2.unlimited_surplus_vcpu_hour"),
            )
        vcpus = spec["vcpus"]
        if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus < 1:
            raise PriceError(f"{where}.vcpus must be a positive integer, got {vcpus!r}")
        out[str(name)] = InstanceType(
            name=str(name),
            vcpus=vcpus,
            memory_gib=_positive(spec["memory_gib"], f"{where}.memory_gib"),
            hourly=_positive(spec["hourly"], f"{where}.hourly"),
            burst=burst,
        )
    return out


@dataclass(frozen=True, slots=True)
class Prices:
    """All prices, with the region and date they are valid for."""

    region: str
    currency: str
    as_of: str
    lambda_: LambdaPrices
    s3: S3Prices
    ec2: Ec2Prices

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Prices:
        """Validate a decoded ``prices.json``; :class:`PriceError` names the bad field."""
        try:
            lam, s3, ec2 = raw["lambda"], raw["s3"], raw["ec2"]
            gb_second = {
                arch: _positive(lam["gb_second"][arch], f"lambda.gb_second.{arch}")
                for arch in ARCHITECTURES
            }
            instances = _instances(ec2)
            hourly = {k: v.hourly for k, v in instances.items()}
            hourly.update(
                {
                    str(k): _positive(v, f"ec2.on_demand_hourly.{k}")
                    for k, v in dict(ec2.get("on_demand_hourly") or {}).items()
                }
            )
            if not hourly:
                raise PriceError("price data lacks ec2.instances (or ec2.on_demand_hourly)")
            return cls(
                region=str(raw["region"]),
                currency=str(raw["currency"]),
                as_of=str(raw["as_of"]),
                lambda_=LambdaPrices(
                    gb_second=gb_second,
                    request=_positive(lam["request"], "lambda.request"),
                    ephemeral_gb_second=_positive(
                        lam.get("ephemeral_gb_second", 0.0), "lambda.ephemeral_gb_second"
                    ),
                    free_ephemeral_mb=int(lam.get("free_ephemeral_mb", 512)),
                ),
                s3=S3Prices(
                    get_request=_positive(s3["get_request"], "s3.get_request"),
                    put_request=_positive(s3["put_request"], "s3.put_request"),
                ),
                ec2=Ec2Prices(
                    on_demand_hourly=hourly,
                    billing_minimum_s=_positive(
                        ec2.get("billing_minimum_s", 60), "ec2.billing_minimum_s"
                    ),
                    ebs_gp3_gb_month=_positive(
                        ec2.get("ebs_gp3_gb_month", 0.0), "ec2.ebs_gp3_gb_month"
                    ),
                    instances=instances,
                    boot_to_ready_s=_positive(
                        ec2.get("boot_to_ready_s", 0.0), "ec2.boot_to_ready_s"
                    ),
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise PriceError(f"price data lacks or mistypes {exc}") from exc


def lambda_invocation_cost(
    *,
    billed_ms: float,
    memory_mb: int,
    architecture: str,
    prices: Prices,
    ephemeral_mb: int | None = None,
) -> float:
    """Cost of one Lambda invocation: billed GB-seconds (INIT included) plus the request.

    ``billed_ms`` is the REPORT line's Billed Duration, which for container images already
    covers the INIT phase of a cold start.
    """
    if billed_ms < 0 or memory_mb <= 0:
        raise PriceError(f"billed_ms must be >= 0 and memory_mb > 0 ({billed_ms}, {memory_mb})")
    try:
        rate = prices.lambda_.gb_second[architecture]
    except KeyError:
        raise PriceError(f"no Lambda price for architecture {architecture!r}") from None
    seconds = billed_ms / 1000.0
    cost = seconds * (memory_mb / 1024.0) * rate + prices.lambda_.request
    if ephemeral_mb is not None and ephemeral_mb > prices.lambda_.free_ephemeral_mb:
        extra_gb = (ephemeral_mb - prices.lambda_.free_ephemeral_mb) / 1024.0
        cost += seconds * extra_gb * prices.lambda_.ephemeral_gb_second
    return cost


def s3_requests_cost(*, gets: int, puts: int, prices: Prices) -> float:
    """Cost of S3 requests (GET-class and PUT-class counts)."""
    if gets < 0 or puts < 0:
        raise PriceError("request counts must be >= 0")
    return gets * prices.s3.get_request + puts * prices.s3.put_request


def ec2_billed_seconds(up_s: float, prices: Prices) -> float:
    """Seconds EC2 bills for one running period: whole seconds, at least the minimum."""
    if up_s < 0:
        raise PriceError(f"uptime must be >= 0, got {up_s}")
    return max(float(math.ceil(up_s)), prices.ec2.billing_minimum_s)


def ec2_hourly(instance_type: str, prices: Prices, *, root_volume_gb: float = 0.0) -> float:
    """Hourly cost of a running instance: on-demand rate plus its gp3 root volume."""
    try:
        rate = prices.ec2.on_demand_hourly[instance_type]
    except KeyError:
        raise PriceError(f"no on-demand price for instance type {instance_type!r}") from None
    storage = root_volume_gb * prices.ec2.ebs_gp3_gb_month * SECONDS_PER_HOUR / SECONDS_PER_MONTH
    return rate + storage


def ec2_cost(
    *, up_s: float, instance_type: str, prices: Prices, root_volume_gb: float = 0.0
) -> float:
    """Cost of one running period of ``up_s`` seconds (boot and idle included by the caller)."""
    billed = ec2_billed_seconds(up_s, prices)
    return (
        billed / SECONDS_PER_HOUR * ec2_hourly(instance_type, prices, root_volume_gb=root_volume_gb)
    )


@dataclass(frozen=True, slots=True)
class VmRun:
    """A piece of CPU work on one instance: how long it takes and what it costs beyond the
    hourly price (see :func:`burstable_run`)."""

    wall_s: float  #: wall time, throttling included
    surplus_vcpu_hours: float  #: vCPU-hours charged above the baseline (unlimited mode)
    surplus_usd: float
    throttled: bool  #: standard mode ran at the baseline for part of the work


def burstable_run(
    itype: InstanceType,
    *,
    vcpu_seconds: float,
    parallelism: float,
    mode: str = "unlimited",
    idle_s: float = 0.0,
) -> VmRun:
    """``vcpu_seconds`` of CPU work that keeps ``parallelism`` vCPUs busy, on ``itype``.

    Unthrottled, the work takes ``vcpu_seconds / parallelism`` seconds (``parallelism`` is at
    most the instance's vCPUs). A non-burstable type always runs it so. A burstable one
    earns ``vcpus * baseline`` vCPU-seconds of credit per second of uptime (``idle_s``
    of uptime without work included, e.g. the boot):

    * **unlimited**: the work runs unthrottled; CPU above what the uptime earned is charged
      as surplus vCPU-hours (AWS charges the surplus of the average over the running time
      above the baseline). 100% of 4 vCPUs for an hour on a t3.xlarge (40% baseline):
      4 * (1 - 0.4) = 2.4 surplus vCPU-hours; at 30% none.
    * **standard**: no surplus is ever charged; with no credit balance (a new T3 has none)
      the instance can use at most ``vcpus * baseline`` vCPUs, so work wider than that runs
      at that rate: 100% of 4 vCPUs for an hour takes 4 / 1.6 = 2.5 hours on a t3.xlarge.
    """
    if vcpu_seconds < 0 or parallelism <= 0 or idle_s < 0:
        raise PriceError(
            f"vcpu_seconds and idle_s must be >= 0 and parallelism > 0 "
            f"({vcpu_seconds}, {parallelism}, {idle_s})"
        )
    if mode not in CREDIT_MODES:
        raise PriceError(f"credit mode must be one of {CREDIT_MODES}, got {mode!r}")
    width = min(float(parallelism), float(itype.vcpus))
    wall = vcpu_seconds / width
    if itype.burst is None:
        return VmRun(wall_s=wall, surplus_vcpu_hours=0.0, surplus_usd=0.0, throttled=False)
    earn = itype.vcpus * itype.burst.baseline_per_vcpu  # vCPUs' worth earned per second
    if mode == "standard":
        if width <= earn:
            return VmRun(wall_s=wall, surplus_vcpu_hours=0.0, surplus_usd=0.0, throttled=False)
        # Credits earned while idle are spent first at full width, the rest at the earn rate.
        banked = earn * idle_s
        fast = min(vcpu_seconds, banked * width / (width - earn)) if banked else 0.0
        wall = fast / width + (vcpu_seconds - fast) / earn
        return VmRun(wall_s=wall, surplus_vcpu_hours=0.0, surplus_usd=0.0, throttled=True)
    surplus = max(0.0, vcpu_seconds - earn * (wall + idle_s)) / SECONDS_PER_HOUR
    return VmRun(
        wall_s=wall,
        surplus_vcpu_hours=surplus,
        surplus_usd=surplus * itype.burst.surplus_vcpu_hour,
        throttled=False,
    )


@dataclass(frozen=True, slots=True)
class SteadyLoad:
    """An always-on instance serving an average CPU demand (see :func:`steady_load`)."""

    demand_vcpus: float  #: average vCPUs the work asks for
    capacity_vcpus: float  #: what the instance can sustain in this mode
    utilisation: float  #: demand over capacity (> 1: it cannot keep up)
    usd_per_hour: float  #: on-demand price plus surplus credits
    surplus_usd_per_hour: float
    slowdown: float  #: a job's time factor from throttling (standard mode over baseline)

    @property
    def keeps_up(self) -> bool:
        """Whether the instance can serve the demand in the long run."""
        return self.utilisation < 1.0


def steady_load(itype: InstanceType, *, demand_vcpus: float, mode: str = "unlimited") -> SteadyLoad:
    """An always-on ``itype`` asked for ``demand_vcpus`` on average (jobs per hour times each
    job's vCPU-seconds, over 3600): its hourly cost with surplus credits, and whether it keeps
    up. Standard mode sustains only the baseline; above it the instance is throttled (each
    job runs at ``baseline`` of its speed) and cannot keep up."""
    if demand_vcpus < 0:
        raise PriceError(f"demand must be >= 0, got {demand_vcpus}")
    if mode not in CREDIT_MODES:
        raise PriceError(f"credit mode must be one of {CREDIT_MODES}, got {mode!r}")
    capacity, surplus, slowdown = float(itype.vcpus), 0.0, 1.0
    if itype.burst is not None:
        earn = itype.vcpus * itype.burst.baseline_per_vcpu
        if mode == "unlimited":
            surplus = max(0.0, min(demand_vcpus, capacity) - earn) * itype.burst.surplus_vcpu_hour
        else:
            capacity = earn
            if demand_vcpus > earn:
                slowdown = 1.0 / itype.burst.baseline_per_vcpu
    return SteadyLoad(
        demand_vcpus=demand_vcpus,
        capacity_vcpus=capacity,
        utilisation=demand_vcpus / capacity if capacity else math.inf,
        usd_per_hour=itype.hourly + surplus,
        surplus_usd_per_hour=surplus,
        slowdown=slowdown,
    )


def break_even_invocations_per_hour(
    *,
    cost_per_invocation: float,
    instance_type: str,
    prices: Prices,
    root_volume_gb: float = 0.0,
) -> float:
    """Invocations per hour above which the always-on VM is cheaper than Lambda.

    Below this rate Lambda costs less (it bills only while working); above it the instance's
    flat hourly price wins. ``math.inf`` when an invocation costs nothing.
    """
    if cost_per_invocation < 0:
        raise PriceError(f"cost_per_invocation must be >= 0, got {cost_per_invocation}")
    if cost_per_invocation == 0:
        return math.inf
    return ec2_hourly(instance_type, prices, root_volume_gb=root_volume_gb) / cost_per_invocation


def break_even_table(
    records: Iterable[Mapping[str, Any]],
    *,
    prices: Prices,
    instance_type: str = "t3.xlarge",
    root_volume_gb: float = 0.0,
    serverless_target: str = "lambda",
) -> list[dict[str, Any]]:
    """Per workload: the median cost of one Lambda invocation and the break-even rate.

    Reads invocation records (plain dicts, as ``records.jsonl`` holds them): successful
    ``serverless_target`` records with a ``cost_usd``, warm ones when there are any (the
    steady state a busy service sees), else all of them. ``break_even_per_hour`` is how many
    such invocations per hour make the always-on instance the cheaper choice.
    """
    by_workload: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("target") == serverless_target and r.get("ok") and r.get("cost_usd") is not None:
            by_workload.setdefault(str(r["workload"]), []).append(r)
    hourly = ec2_hourly(instance_type, prices, root_volume_gb=root_volume_gb)
    rows = []
    for workload in sorted(by_workload):
        recs = by_workload[workload]
        warm = [r for r in recs if not r.get("cold")]
        basis = warm or recs
        median = statistics.median(float(r["cost_usd"]) for r in basis)
        rows.append(
            {
                "workload": workload,
                "basis": "warm" if warm else "all",
                "invocations": len(basis),
                "median_cost_usd": median,
                "instance_type": instance_type,
                "instance_hourly_usd": hourly,
                "break_even_per_hour": break_even_invocations_per_hour(
                    cost_per_invocation=median,
                    instance_type=instance_type,
                    prices=prices,
                    root_volume_gb=root_volume_gb,
                ),
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One priced item of a run's bill."""

    item: str
    quantity: float
    unit: str
    cost_usd: float


@dataclass(slots=True)
class CostLedger:
    """A run's bill as priced lines; thread-safe so concurrent invocations can add to it."""

    currency: str = "USD"
    lines: list[LedgerLine] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, item: str, quantity: float, unit: str, cost_usd: float) -> None:
        """Append one line."""
        with self._lock:
            self.lines.append(LedgerLine(item, quantity, unit, cost_usd))

    def total(self) -> float:
        """Sum of all lines."""
        with self._lock:
            return sum(line.cost_usd for line in self.lines)

    def summary(self) -> dict[str, Any]:
        """Lines aggregated by item (quantities and costs summed), plus the total."""
        by_item: dict[str, dict[str, Any]] = {}
        with self._lock:
            for line in self.lines:
                agg = by_item.setdefault(
                    line.item, {"quantity": 0.0, "unit": line.unit, "cost_usd": 0.0}
                )
                agg["quantity"] += line.quantity
                agg["cost_usd"] += line.cost_usd
        return {
            "currency": self.currency,
            "items": by_item,
            "total_usd": sum(v["cost_usd"] for v in by_item.values()),
        }
