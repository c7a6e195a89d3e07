"""The verdict per workload: functions or a VM, for what arrival rate, with both sides' time to
result and cost per job, each marked measured or model (see :mod:`.cloud` for the model).

One sentence per workload, generated from the figures, never written by hand; the same as
data in ``headline.json``'s ``verdict`` (the dashboard shows it for every finished run).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Final

from serverless_hpc.pricing import Prices
from serverless_hpc.report import cloud
from serverless_hpc.report.data import RunData
from serverless_hpc.report.profile import PlatformProfile

FUNCTIONS: Final = "functions"
VM: Final = "vm"
#: Points of the log-spaced search for the rates where the answer changes.
SEARCH_POINTS: Final = 96


def _fmt_ms(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 600_000:
        return f"{ms / 1000:.3g} s"
    return f"{ms / 60_000:.1f} min"


def _fmt_usd(usd: float) -> str:
    return f"${usd:.2g}" if usd < 0.01 else f"${usd:,.3f}"


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


class _Workload:
    """Both sides of one workload, evaluated at any rate."""

    def __init__(
        self,
        plans: Sequence[cloud.FaasPlan],
        job: cloud.VmJob | None,
        *,
        prices: Prices,
        profile: PlatformProfile,
        opts: cloud.Options,
    ) -> None:
        self.plans, self.job = plans, job
        self.prices, self.profile, self.opts = prices, profile, opts

    def at(self, rate: float) -> tuple[cloud.Side | None, cloud.Side | None, str | None]:
        """(functions, VM, winner) at ``rate``; the winner is the cheaper per job."""
        faas = cloud.best_faas(self.plans, rate, self.profile.lambda_.keep_alive_s)
        vm = (
            cloud.best_vm(self.job, rate, prices=self.prices, profile=self.profile, opts=self.opts)
            if self.job is not None
            else None
        )
        if faas is None or vm is None:
            return faas, vm, FUNCTIONS if faas else (VM if vm else None)
        return faas, vm, FUNCTIONS if faas.cost_usd <= vm.cost_usd else VM

    def changes(self, lo: float, hi: float) -> list[float]:
        """The rates in [lo, hi] where the winner changes (bisection on a log grid)."""
        if hi <= lo:
            return []
        grid = [lo * (hi / lo) ** (i / (SEARCH_POINTS - 1)) for i in range(SEARCH_POINTS)]
        wins = [self.at(r)[2] for r in grid]
        out = []
        for i in range(len(grid) - 1):
            a, b, wa = grid[i], grid[i + 1], wins[i]
            if wa == wins[i + 1]:
                continue
            for _ in range(40):
                mid = math.sqrt(a * b)
                if self.at(mid)[2] == wa:
                    a = mid
                else:
                    b = mid
            out.append(math.sqrt(a * b))
        return out


def _side_text(side: cloud.Side, *, first: bool) -> str:
    basis = (
        side.time_basis
        if side.time_basis == side.cost_basis
        else f"time {side.time_basis}, cost {side.cost_basis}"
    )
    job = " a job" if first else ""
    return f"{_fmt_ms(side.time_ms)} and {_fmt_usd(side.cost_usd)}{job} on {side.config} ({basis})"


def _sentence(v: dict[str, Any], faas: cloud.Side | None, vm: cloud.Side | None) -> str:
    lo, hi = v["jobs_per_hour"]
    rates = f"{_fmt_rate(lo)} jobs/h" if lo == hi else f"{_fmt_rate(lo)}-{_fmt_rate(hi)} jobs/h"
    name = {FUNCTIONS: "functions", VM: "a VM"}
    segs = v["segments"]
    if not segs:
        return f"{v['workload']}: neither side could be projected from this run."
    if len(segs) == 1:
        choice = name[segs[0]["choice"]] + ("" if lo == hi else " throughout")
    else:
        parts = [
            f"{name[s['choice']]} "
            + (f"below {_fmt_rate(s['to'])}" if i == 0 else f"above {_fmt_rate(s['from'])}")
            for i, s in enumerate(segs[:2])
        ]
        choice = ", ".join(parts) + (" (and it changes again)" if len(segs) > 2 else "")
    at = "" if lo == hi else f"at {_fmt_rate(hi)} jobs/h, "
    if faas is None or vm is None:
        only, missing = (faas, "VM") if vm is None else (vm, "function")
        assert only is not None  # segments exist, so one side does
        why = (
            "no function plan within Lambda's limits"
            if missing == "function" and v.get("has_function_target")
            else f"no {missing} target in this run"
        )
        return (
            f"{v['workload']} at {rates}: only {name[v['choice']]} to answer with ({why}); "
            f"{at}{_side_text(only, first=True)}."
        )
    sides = {FUNCTIONS: faas, VM: vm}
    first = v["choice"] or FUNCTIONS
    second = VM if first == FUNCTIONS else FUNCTIONS
    texts = []
    for which, lead in ((first, True), (second, False)):
        side = sides[which]
        if side is not None:
            texts.append(_side_text(side, first=lead))
        elif which == FUNCTIONS:
            texts.append("no function plan within Lambda's limits")
        else:
            texts.append("no VM job measured to compare")
    flip = ""
    if v["changes_at"] and len(segs) == 1:
        other = name[VM if segs[0]["choice"] == FUNCTIONS else FUNCTIONS]
        r = v["changes_at"][0]
        verb = "win" if other == "functions" else "wins"
        flip = f"; {other} {verb} {'above' if r > hi else 'below'} {_fmt_rate(r)} jobs/h"
    return f"{v['workload']} at {rates}: {choice}, {at}{texts[0]}, against {texts[1]}{flip}."


def verdicts(
    data: RunData,
    configs: Sequence[dict[str, Any]],
    prices: Prices,
    profile: PlatformProfile,
    opts: cloud.Options = cloud.DEFAULT_OPTIONS,
) -> dict[str, dict[str, Any]]:
    """Per workload: the verdict as data, with its ``sentence``."""
    plans = cloud.faas_plans(data, configs, profile, prices, opts)
    jobs = cloud.vm_jobs(data, configs, profile, prices)
    lo, hi = opts.rates
    out: dict[str, dict[str, Any]] = {}
    for workload in sorted(set(plans) | set(jobs)):
        w = _Workload(
            plans.get(workload, []), jobs.get(workload), prices=prices, profile=profile, opts=opts
        )
        inside = w.changes(lo, hi)
        edges = [lo, *inside, hi]
        segments = []
        for a, b in itertools.pairwise(edges):
            _, _, win = w.at(math.sqrt(a * b) if b > a else a)
            if win is not None:
                segments.append({"from": a, "to": b, "choice": win})
        if lo == hi:
            _, _, win = w.at(lo)
            segments = [{"from": lo, "to": hi, "choice": win}] if win else []
        outside = [] if inside else w.changes(*cloud.SEARCH_RATES)
        faas, vm, win = w.at(opts.reference_rate)
        speed, speed_source = profile.speed(workload)
        v: dict[str, Any] = {
            "has_function_target": any(
                c["workload"] == workload and c["kind"] == "faas" for c in configs
            ),
            "workload": workload,
            "jobs_per_hour": [lo, hi],
            "quoted_at_jobs_per_hour": opts.reference_rate,
            "choice": win,
            "segments": segments,
            "changes_at": inside or outside,
            "functions": faas.as_dict() if faas else None,
            "vm": vm.as_dict() if vm else None,
            "speed_factor": speed,
            "speed_factor_source": speed_source,
        }
        v["sentence"] = _sentence(v, faas, vm)
        out[workload] = v
    return out


def table(
    data: RunData,
    configs: Sequence[dict[str, Any]],
    prices: Prices,
    profile: PlatformProfile,
    opts: cloud.Options = cloud.DEFAULT_OPTIONS,
    rates: Sequence[float] = (1, 10, 100, 1000, 10000),
) -> list[dict[str, Any]]:
    """Both sides per workload at each of ``rates`` (the report's table under the verdict)."""
    plans = cloud.faas_plans(data, configs, profile, prices, opts)
    jobs = cloud.vm_jobs(data, configs, profile, prices)
    rows = []
    for workload in sorted(set(plans) | set(jobs)):
        w = _Workload(
            plans.get(workload, []), jobs.get(workload), prices=prices, profile=profile, opts=opts
        )
        for rate in rates:
            faas, vm, win = w.at(float(rate))
            rows.append(
                {
                    "workload": workload,
                    "jobs_per_hour": rate,
                    "choice": win,
                    "functions": faas.as_dict() if faas else None,
                    "vm": vm.as_dict() if vm else None,
                }
            )
    return rows


def vm_types(
    data: RunData,
    configs: Sequence[dict[str, Any]],
    prices: Prices,
    profile: PlatformProfile,
    opts: cloud.Options = cloud.DEFAULT_OPTIONS,
) -> list[dict[str, Any]]:
    """Every catalogue type, both placements, per workload at the reference rate."""
    jobs = cloud.vm_jobs(data, configs, profile, prices)
    mode = opts.credit_mode or profile.vm_credit_mode
    rate = opts.reference_rate
    rows = []
    for workload, job in sorted(jobs.items()):
        speed, _ = profile.speed(workload)
        for name in [opts.instance] if opts.instance else sorted(prices.ec2.instances):
            itype = prices.ec2.instances[name]
            for side in cloud.vm_side(job, itype, rate, mode=mode, speed=speed, prices=prices):
                rows.append({"workload": workload, "jobs_per_hour": rate, **side.as_dict()})
    return rows
