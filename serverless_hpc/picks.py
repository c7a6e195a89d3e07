"""Which memory size to pick: time and cost at each size, and three picks with their confidence.

Per target, workload and fan-out (``shards``; a job is one fan-out of that many
invocations), at each memory size the run measured:

* **median duration**: the platform's handler duration of the warm, successful invocations
  (cold starts are a separate question; a size with only cold ones uses those);
* **cost per invocation** (median) and **per job** (that times ``shards``): what the platform
  billed where it bills (``cost_usd`` of the records, basis ``billed``); elsewhere, on a
  local target, what that duration would cost on Lambda at that size (ceil to 1 ms, x86_64
  price, the request fee; basis ``lambda-equivalent (model)``): a projection, labelled so
  wherever it appears.

Sizes where an invocation ran out of memory are listed but never picked. The picks:

* **cheapest**: the lowest median cost per job (ties: the faster);
* **fastest**: the lowest median duration (ties: the cheaper);
* **balanced**: the lowest (cost / cheapest cost) x (time / fastest time): the size that gives
  up least of both, in relative terms (10% dearer and 30% faster beats 30% dearer and 10%
  faster).

Confidence compares the pick with the runner-up by the same measure, on the per-invocation
samples: ``high`` when both have at least 5 samples and their interquartile ranges do not
overlap; ``medium`` when the pick's median lies below the runner-up's lower quartile; else
``low`` (also with fewer than 3 samples). With one candidate size there is nothing to compare.

Pure: no I/O, no charting library at import (:func:`plot_memory` draws with pygal, imported
when it is called).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from serverless_hpc.pricing import PriceError, Prices, lambda_invocation_cost

BILLED: Final = "billed"
MODEL: Final = "lambda-equivalent (model)"
KINDS: Final = ("cheapest", "fastest", "balanced")

Key = tuple[str, str, int]  # target, workload, shards


@dataclass(frozen=True, slots=True)
class SizeStats:
    """One memory size of one (target, workload, shards)."""

    target: str
    workload: str
    shards: int
    memory_mb: int
    n: int
    failed: int
    out_of_memory: int
    oversubscribed: bool
    median_ms: float | None
    cost_per_invocation_usd: float | None
    cost_per_job_usd: float | None
    cost_basis: str | None
    durations: tuple[float, ...]
    costs: tuple[float, ...]

    @property
    def candidate(self) -> bool:
        """Whether this size can be picked (measured, and never out of memory)."""
        return self.out_of_memory == 0 and self.median_ms is not None and self.n > 0


@dataclass(frozen=True, slots=True)
class Pick:
    """One pick: its kind, the size, and how sure the measurements make it."""

    target: str
    workload: str
    shards: int
    kind: str
    memory_mb: int
    confidence: str
    runner_up_mb: int | None


def _q(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def confidence(best: Sequence[float], runner_up: Sequence[float] | None) -> str:
    """``high``/``medium``/``low`` (lower is better) or ``n/a`` without a runner-up."""
    if runner_up is None:
        return "n/a (one size)"
    if len(best) < 3 or len(runner_up) < 3:
        return "low"
    if len(best) >= 5 and len(runner_up) >= 5 and _q(best, 0.75) < _q(runner_up, 0.25):
        return "high"
    if statistics.median(best) < _q(runner_up, 0.25):
        return "medium"
    return "low"


#: Targets whose instances emulate a function of the record's memory size, so what their
#: duration would cost on Lambda at that size is a meaningful projection.
MODEL_TARGETS: Final = frozenset({"local-faas"})
#: Lambda's memory range: a projection outside it prices a function that cannot exist.
LAMBDA_MEMORY_MB: Final = (128, 10_240)


def _cost(record: Mapping[str, Any], prices: Prices | None) -> tuple[float | None, str | None]:
    cost = record.get("cost_usd")
    if isinstance(cost, int | float):
        return float(cost), BILLED
    duration, memory = record.get("duration_ms"), record.get("memory_mb")
    if (
        prices is None
        or record.get("target") not in MODEL_TARGETS
        or not isinstance(duration, int | float)
        or not isinstance(memory, int)
        or not LAMBDA_MEMORY_MB[0] <= memory <= LAMBDA_MEMORY_MB[1]
    ):
        return None, None
    try:
        model = lambda_invocation_cost(
            billed_ms=math.ceil(duration), memory_mb=memory, architecture="x86_64", prices=prices
        )
    except PriceError:
        return None, None
    return model, MODEL


def size_table(
    records: Iterable[Mapping[str, Any]], prices: Prices | None = None
) -> list[SizeStats]:
    """Every (target, workload, shards) measured at two memory sizes or more, at each size,
    sorted by key then size (a target that ran at one size has nothing to choose from).

    ``prices`` prices the model cost of records that carry no billed cost (None: no cost).
    """
    groups: dict[tuple[str, str, int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        memory = r.get("memory_mb")
        if isinstance(memory, int) and r.get("mode", "natural") == "natural":
            groups[(str(r["target"]), str(r["workload"]), int(r["shards"]), memory)].append(r)
    sizes: dict[Key, int] = defaultdict(int)
    for target, workload, shards, _ in groups:
        sizes[(target, workload, shards)] += 1
    groups = {k: v for k, v in groups.items() if sizes[k[:3]] >= 2}
    out = []
    for (target, workload, shards, memory), recs in sorted(groups.items()):
        ok = [r for r in recs if r.get("ok") and isinstance(r.get("duration_ms"), int | float)]
        warm = [r for r in ok if not r.get("cold")] or ok
        durations = tuple(float(r["duration_ms"]) for r in warm)
        priced = [_cost(r, prices) for r in warm]
        costs = tuple(c for c, _ in priced if c is not None)
        bases = {b for _, b in priced if b is not None}
        per_inv = statistics.median(costs) if costs and len(costs) == len(warm) else None
        oom = sum(1 for r in recs if str(r.get("error") or "").startswith("OutOfMemory"))
        out.append(
            SizeStats(
                target=target,
                workload=workload,
                shards=shards,
                memory_mb=memory,
                n=len(warm),
                failed=len(recs) - len(ok),
                out_of_memory=oom,
                oversubscribed=any(r.get("oversubscribed") for r in recs),
                median_ms=statistics.median(durations) if durations else None,
                cost_per_invocation_usd=per_inv,
                cost_per_job_usd=per_inv * shards if per_inv is not None else None,
                cost_basis=(MODEL if MODEL in bases else BILLED) if bases else None,
                durations=durations,
                costs=costs if per_inv is not None else (),
            )
        )
    return out


def _best(
    cands: list[SizeStats],
    metric: Callable[[SizeStats], float],
    tie: Callable[[SizeStats], float],
    samples: Callable[[SizeStats], Sequence[float]],
) -> tuple[SizeStats, str, int | None]:
    ranked = sorted(cands, key=lambda s: (metric(s), tie(s), s.memory_mb))
    best = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    conf = confidence(samples(best), samples(runner) if runner is not None else None)
    return best, conf, runner.memory_mb if runner is not None else None


def picks(table: Sequence[SizeStats]) -> list[Pick]:
    """The three picks of every (target, workload, shards) with a candidate size.

    Cheapest and balanced need a cost at every candidate size; without one only the
    fastest is picked.
    """
    by_key: dict[Key, list[SizeStats]] = defaultdict(list)
    for s in table:
        if s.candidate:
            by_key[(s.target, s.workload, s.shards)].append(s)
    out: list[Pick] = []
    for key, cands in sorted(by_key.items()):
        out += _picks_of(key, cands)
    return out


def _picks_of(key: Key, cands: list[SizeStats]) -> list[Pick]:
    chosen: list[tuple[str, tuple[SizeStats, str, int | None]]] = []
    priced = all(s.cost_per_job_usd is not None for s in cands)
    if priced:
        chosen.append(
            (
                "cheapest",
                _best(
                    cands,
                    lambda s: s.cost_per_job_usd or 0.0,
                    lambda s: s.median_ms or 0.0,
                    lambda s: s.costs,
                ),
            )
        )
    chosen.append(
        (
            "fastest",
            _best(
                cands,
                lambda s: s.median_ms or 0.0,
                lambda s: s.cost_per_job_usd or 0.0,
                lambda s: s.durations,
            ),
        )
    )
    if priced:
        min_cost = min(s.cost_per_invocation_usd or 0.0 for s in cands) or 1e-30
        min_ms = min(s.median_ms or 0.0 for s in cands) or 1e-9

        def score(s: SizeStats) -> float:
            return ((s.cost_per_invocation_usd or 0.0) / min_cost) * ((s.median_ms or 0.0) / min_ms)

        def score_samples(s: SizeStats) -> list[float]:
            pairs = zip(s.costs, s.durations, strict=True)
            return [(c / min_cost) * (d / min_ms) for c, d in pairs]

        chosen.append(
            ("balanced", _best(cands, score, lambda s: s.median_ms or 0.0, score_samples))
        )
    return [
        Pick(key[0], key[1], key[2], kind, s.memory_mb, conf, runner)
        for kind, (s, conf, runner) in chosen
    ]


def pick_labels(found: Sequence[Pick]) -> dict[tuple[str, str, int, int], str]:
    """(target, workload, shards, memory_mb) -> e.g. ``"cheapest+balanced"``."""
    labels: dict[tuple[str, str, int, int], list[str]] = defaultdict(list)
    for p in found:
        labels[(p.target, p.workload, p.shards, p.memory_mb)].append(p.kind)
    return {k: "+".join(v) for k, v in labels.items()}


COLUMNS: Final = (
    "target",
    "workload",
    "shards",
    "memory_mb",
    "n",
    "failed",
    "out_of_memory",
    "oversubscribed",
    "median_ms",
    "cost_per_invocation_usd",
    "cost_per_job_usd",
    "cost_basis",
    "pick",
    "pick_confidence",
)


def rows(table: Sequence[SizeStats], found: Sequence[Pick]) -> list[dict[str, Any]]:
    """One row per size (:data:`COLUMNS`), its picks and their confidence."""
    labels = pick_labels(found)
    conf: dict[tuple[str, str, int, int], list[str]] = defaultdict(list)
    for p in found:
        conf[(p.target, p.workload, p.shards, p.memory_mb)].append(f"{p.kind}: {p.confidence}")
    out = []
    for s in table:
        key = (s.target, s.workload, s.shards, s.memory_mb)
        out.append(
            {
                "target": s.target,
                "workload": s.workload,
                "shards": s.shards,
                "memory_mb": s.memory_mb,
                "n": s.n,
                "failed": s.failed,
                "out_of_memory": s.out_of_memory,
                "oversubscribed": s.oversubscribed,
                "median_ms": s.median_ms,
                "cost_per_invocation_usd": s.cost_per_invocation_usd,
                "cost_per_job_usd": s.cost_per_job_usd,
                "cost_basis": s.cost_basis,
                "pick": labels.get(key, ""),
                "pick_confidence": "; ".join(conf.get(key, [])),
            }
        )
    return out


def to_csv(table_rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV text."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in table_rows:
        w.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return buf.getvalue()


def _fmt_cost(v: float | None) -> str:
    return "" if v is None else f"{v:.3g}"


RULES: Final = (
    "cheapest = lowest median cost per job; fastest = lowest median warm duration; "
    "balanced = lowest (cost / cheapest cost) x (time / fastest time). Confidence: high when "
    "the pick's and the runner-up's interquartile ranges do not overlap (n >= 5 each), medium "
    "when the pick's median is below the runner-up's lower quartile, else low."
)


def markdown(table: Sequence[SizeStats], found: Sequence[Pick]) -> str:
    """The per-size table and the picks as Markdown (empty when no size was measured)."""
    if not table:
        return ""
    lines = [
        "| target | workload | shards | memory MB | n | median ms | USD / invocation | "
        "USD / job | cost basis | pick |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = pick_labels(found)
    for s in table:
        median = f"{s.median_ms:.1f}" if s.median_ms is not None else ""
        if s.out_of_memory:
            median = f"OutOfMemory ({s.out_of_memory})"
        flag = " (oversubscribed)" if s.oversubscribed else ""
        lines.append(
            f"| {s.target} | {s.workload} | {s.shards} | {s.memory_mb} | {s.n} | {median}{flag} "
            f"| {_fmt_cost(s.cost_per_invocation_usd)} | {_fmt_cost(s.cost_per_job_usd)} "
            f"| {s.cost_basis or ''} "
            f"| {labels.get((s.target, s.workload, s.shards, s.memory_mb), '')} |"
        )
    by_key: dict[Key, list[Pick]] = defaultdict(list)
    for p in found:
        by_key[(p.target, p.workload, p.shards)].append(p)
    lines.append("")
    for (target, workload, shards), ps in sorted(by_key.items()):
        said = ", ".join(f"{p.kind} {p.memory_mb} MB ({p.confidence})" for p in ps)
        lines.append(f"- {target} {workload} x{shards}: {said}")
    lines += ["", RULES]
    if any(s.cost_basis == MODEL for s in table):
        lines.append(
            "Costs marked 'lambda-equivalent (model)' are what the measured duration would cost "
            "on Lambda at that size (x86_64 list price): a projection, not a bill."
        )
    return "\n".join(lines) + "\n"


def plot_memory(table: Sequence[SizeStats], found: Sequence[Pick]) -> bytes | None:
    """An SVG of median time (left axis) and cost per job (right axis) against memory, one
    panel per (target, workload, shards) measured at two sizes or more, the picks labelled
    at their points; None when there is none."""
    by_key: dict[Key, list[SizeStats]] = defaultdict(list)
    for s in table:
        if s.candidate:
            by_key[(s.target, s.workload, s.shards)].append(s)
    keys = [k for k, v in sorted(by_key.items()) if len(v) >= 2]
    if not keys:
        return None
    from serverless_hpc import charts

    labels = pick_labels(found)
    panels = []
    for key in keys:
        sizes = sorted(by_key[key], key=lambda s: s.memory_mb)
        mbs = [s.memory_mb for s in sizes]
        times = [s.median_ms for s in sizes if s.median_ms is not None]
        costs = [s.cost_per_job_usd for s in sizes if s.cost_per_job_usd is not None]
        priced = len(costs) == len(sizes)
        # Sizes are mostly powers of two: a log axis spaces them evenly; each size labelled.
        to_x, x_axis = charts.log_x(mbs, ticks=mbs)
        made = charts.chart(
            "XY",
            title=f"{key[0]} {key[1]} x{key[2]}",
            x_title="memory (MB)",
            y_title="median duration (ms)",
            print_labels=True,
            # One legend entry a row: the cost's label is long.
            legend_at_bottom_columns=1,
            range=charts.padded(min(times), max(times)) if times else None,
            secondary_range=charts.padded(min(costs), max(costs)) if priced else None,
            **x_axis,
        )
        made.add(
            "median ms (left axis)",
            [
                {
                    "value": (to_x(s.memory_mb), s.median_ms),
                    "label": labels.get((*key, s.memory_mb)),
                }
                for s in sizes
                if s.median_ms is not None
            ],
        )
        if priced:
            model = any(s.cost_basis == MODEL for s in sizes)
            made.add(
                "USD per job" + (" (Lambda-equivalent model)" if model else "") + " (right axis)",
                [(to_x(s.memory_mb), c) for s, c in zip(sizes, costs, strict=True)],
                secondary=True,
                stroke_style={"width": 2, "dasharray": "6, 4"},
            )
        panels.append(charts.render(made))
    return charts.compose(panels)
