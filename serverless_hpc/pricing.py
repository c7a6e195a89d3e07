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


@dataclass(frozen=True, slots=True)
class Ec2Prices:
    """EC2 on-demand hourly prices by instance type, billing minimum and gp3 storage price."""

    on_demand_hourly: Mapping[str, float]
    billing_minimum_s: float = 60.0
    ebs_gp3_gb_month: float = 0.0


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
            hourly = {
                str(k): _positive(v, f"ec2.on_demand_hourly.{k}")
                for k, v in dict(ec2["on_demand_hourly"]).items()
            }
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
                ),
            )
        except (KeyError, TypeError) as exc:
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
