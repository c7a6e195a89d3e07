"""Trainings: test accuracy against elapsed time and cost, and the time and cost to 0.90.

A training is one batch of a workload whose spec declares a :class:`~serverless_hpc.
workloads.spec.Training` convention: a chain of legs (records with ``leg``) or data-parallel
rounds (records with ``role`` ``worker``/``combine``, batch field ``workers``). Its batch line
holds the function's own progress entries (per epoch or round: the epoch, the accuracy under
the spec's key, and ``t_unix``, when the function finished that epoch). The curve is computed
here, and only here, with :func:`serverless_hpc.chain.curve` from those entries and the
training's records, each leg priced by its measured cost or, where it has none, by the same
models as the decision section (:mod:`serverless_hpc.report.decision`): Lambda's prices on
the leg's measured handler time for a function target; for a VM target, the VM type's hourly
price times the time since the training's first request (a VM bills its uptime once, however
many workers run on it). A curve with any modelled leg is labelled a model wherever it is
shown. Elapsed time counts from the training's first request (the earliest ``t_send`` of its
records).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serverless_hpc import chain, workloads
from serverless_hpc import charts as charting
from serverless_hpc.pricing import Prices
from serverless_hpc.report.data import RunData
from serverless_hpc.report.decision import (
    LAMBDA_MODEL,
    MEASURED,
    modelled_lambda_cost,
    vm_cost,
    vm_hourly_usd,
)
from serverless_hpc.report.profile import PlatformProfile
from serverless_hpc.workloads.spec import Training as Convention

#: The accuracy that time and cost are read at.
TARGET_ACCURACY = chain.TARGET_ACCURACY
#: The chart files :func:`charts` returns.
TIME_CHART = "training_accuracy_by_time.svg"
COST_CHART = "training_accuracy_by_cost.svg"


@dataclass(frozen=True, slots=True)
class Training:
    """One training of the run with its accuracy curve and the time and cost to the target."""

    workload: str
    target: str
    workers: int
    repeat: int
    mode: str
    memory_mb: int | None
    #: How the headline and the table name it, e.g. ``local-faas/train/natural, 2 workers``.
    label: str
    #: What sets it apart from the run's other trainings of its target and width: its
    #: memory size and repeat, when the run has several ("" otherwise).
    variant: str
    #: Epochs (or rounds) done, as the last progress point says; None without progress.
    epochs: int | None
    #: The final test accuracy (the batch's, else the last point's), None when unknown.
    test_accuracy: float | None
    makespan_ms: float | None
    failed: int
    #: One point per epoch: ``epoch``, ``accuracy``, ``elapsed_s``, ``cost_usd``.
    points: list[dict[str, Any]] = field(default_factory=list)
    #: ``measured``, a ``model: ...`` basis, or "" when the cost is not known.
    cost_basis: str = ""
    #: The first point at or above :data:`TARGET_ACCURACY` (``epoch`` None: not reached).
    reached: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_model(self) -> bool:
        """Whether the costs are a model rather than what the platform billed."""
        return self.cost_basis.startswith("model")

    @property
    def accuracy_per_epoch(self) -> bool:
        """Whether the progress carries a test accuracy per epoch (else no time to target)."""
        return any(isinstance(p.get("accuracy"), int | float) for p in self.points)

    def as_dict(self) -> dict[str, Any]:
        """The figures as ``headline.json`` carries them."""
        return {
            "workload": self.workload,
            "target": self.target,
            "workers": self.workers,
            "repeat": self.repeat,
            "memory_mb": self.memory_mb,
            "row": self.label,
            "epochs": self.epochs,
            "test_accuracy": self.test_accuracy,
            # kept from the earlier shape: the time to the final accuracy (the makespan)
            "time_to_accuracy_ms": self.makespan_ms,
            "accuracy_target": TARGET_ACCURACY,
            "reached_target": self.reached.get("epoch") is not None,
            "epochs_to_target": self.reached.get("epoch"),
            "time_to_target_s": self.reached.get("elapsed_s"),
            "cost_to_target_usd": self.reached.get("cost_usd"),
            "cost_basis": self.cost_basis or None,
            "cost_model": self.cost_model,
        }


def _workers(x: Mapping[str, Any]) -> int:
    """A record's training width: a round's records carry it as ``shards``; a leg is one."""
    if x.get("role") in ("worker", "combine"):
        return int(x["shards"])
    return 1


def _memory(x: Mapping[str, Any]) -> int | None:
    m = x.get("memory_mb")
    return int(m) if isinstance(m, int | float) and not isinstance(m, bool) else None


def convention(workload: object) -> Convention | None:
    """The training conventions ``workload``'s spec declares (None: not a training, or a
    workload this installation does not have)."""
    spec = workloads.specs().get(str(workload))
    return spec.training if spec is not None else None


def _is_training(b: Mapping[str, Any]) -> bool:
    conv = convention(b.get("workload"))
    if conv is None:
        return False
    return b.get(conv.accuracy_key) is not None or isinstance(b.get(conv.progress_key), list)


def trained_models(data: RunData) -> list[dict[str, Any]]:
    """Each training batch that produced a model: target, workers, version, test accuracy."""
    out = []
    for b in data.batches:
        conv = convention(b.get("workload"))
        acc = b.get(conv.accuracy_key) if conv is not None else None
        if isinstance(acc, int | float) and not isinstance(acc, bool):
            out.append({**b, "test_accuracy": float(acc)})
    return out


def priced_legs(
    records: Sequence[Mapping[str, Any]], kind: str, prices: Prices, profile: PlatformProfile
) -> tuple[list[chain.Leg], str]:
    """The training's invocations as :class:`chain.Leg` with a cost each, and the basis.

    Measured where a record carries ``cost_usd``; else on a function target Lambda's price
    of the record (:func:`decision.modelled_lambda_cost`); on a VM target one leg spanning
    the whole training at the VM's hourly price, so parallel workers are not billed twice.
    Costs stay None where neither applies (a target the profile does not know).
    """
    if not records:
        return [], ""
    if all(r.get("cost_usd") is not None for r in records):
        return [chain.Leg(r["t_send"], r["t_recv"], float(r["cost_usd"])) for r in records], (
            MEASURED
        )
    if kind == "faas":
        legs = [
            chain.Leg(
                r["t_send"],
                r["t_recv"],
                float(r["cost_usd"])
                if r.get("cost_usd") is not None
                else modelled_lambda_cost(r, prices, profile),
            )
            for r in records
        ]
        return legs, LAMBDA_MODEL
    hourly = vm_hourly_usd(profile, prices) if kind == "vm" else None
    if hourly is not None:
        t0 = min(r["t_send"] for r in records)
        t1 = max(r["t_recv"] for r in records)
        basis = f"model: {profile.vm_instance_type} hourly price x elapsed time"
        return [chain.Leg(t0, t1, vm_cost(hourly, t1 - t0))], basis
    return [chain.Leg(r["t_send"], r["t_recv"], r.get("cost_usd")) for r in records], ""


def rebuild_curve(
    progress: Sequence[Mapping[str, Any]],
    legs: Sequence[chain.Leg],
    t0: float,
    conv: Convention | None = None,
) -> list[dict[str, Any]]:
    """The batch's accuracy points with their cost from ``legs`` (times from ``t0``).

    An entry's time is the function's own stamp (``t_unix``); runs written before the curve
    moved to the report carry ``elapsed_s`` from ``t0`` instead.
    """
    conv = conv or Convention()
    raw = []
    for p in progress:
        if not isinstance(p, Mapping):
            continue
        if _number(p.get("t_unix")):
            raw.append(dict(p))
        elif _number(p.get("elapsed_s")):
            raw.append({**p, "t_unix": t0 + float(p["elapsed_s"])})
    return chain.curve(legs, raw, t0, accuracy_key=conv.accuracy_key, fields=conv.entry_fields)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def workers_text(workers: int) -> str:
    """``1 worker``, ``2 workers``: a training's width as its labels say it."""
    return f"{workers} worker{'s' if workers > 1 else ''}"


def trainings(data: RunData, prices: Prices, profile: PlatformProfile) -> list[Training]:
    """Every training of the run, in (workload, target, workers, memory, repeat) order."""
    batches = [b for b in data.batches if _is_training(b)]
    if not batches:
        return []
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in data.records:
        key = (r["target"], r["workload"], r["mode"], int(r.get("repeat", 0)), _workers(r))
        by_key.setdefault(key, []).append(r)
    # What sets trainings of one workload, target and width apart, when the run has several
    sizes: dict[tuple[Any, ...], set[int | None]] = {}
    repeats: dict[tuple[Any, ...], set[int]] = {}
    for b in batches:
        group = (b["workload"], b["target"], b["mode"], int(b.get("workers") or 1))
        sizes.setdefault(group, set()).add(_memory(b))
        repeats.setdefault(group, set()).add(int(b.get("repeat", 0)))
    out = []
    for b in batches:
        workers = int(b.get("workers") or 1)
        repeat = int(b.get("repeat", 0))
        memory = _memory(b)
        recs = by_key.get((b["target"], b["workload"], b["mode"], repeat, workers), [])
        if memory is not None:
            recs = [r for r in recs if _memory(r) in (memory, None)]
        legs, basis = priced_legs(recs, profile.kind(b["target"]), prices, profile)
        conv = convention(b["workload"]) or Convention()
        raw = b.get(conv.progress_key)
        progress: list[Any] = raw if isinstance(raw, list) else []
        if recs:
            points = rebuild_curve(progress, legs, min(r["t_send"] for r in recs), conv)
        else:  # its records are not in the run: the driver's own curve, as it stands
            points = [
                {**p, "accuracy": p.get(conv.accuracy_key)}
                for p in progress
                if isinstance(p, dict) and "elapsed_s" in p
            ]
            basis = MEASURED
        if points and all(p.get("cost_usd") is None for p in points):
            basis = ""
        last_acc = next(
            (p["accuracy"] for p in reversed(points) if isinstance(p.get("accuracy"), int | float)),
            None,
        )
        final = b.get(conv.accuracy_key)
        group = (b["workload"], b["target"], b["mode"], workers)
        extra = [f"{memory} MB"] if len(sizes[group]) > 1 and memory else []
        extra += [f"repeat {repeat}"] if len(repeats[group]) > 1 else []
        variant = ", ".join(extra)
        label = f"{b['target']}/{b['workload']}/{b['mode']}, {workers_text(workers)}"
        out.append(
            Training(
                workload=b["workload"],
                target=b["target"],
                workers=workers,
                repeat=repeat,
                mode=b["mode"],
                memory_mb=memory,
                label=f"{label}, {variant}" if variant else label,
                variant=variant,
                epochs=next((int(p["epoch"]) for p in reversed(points) if p.get("epoch")), None),
                test_accuracy=float(final) if isinstance(final, int | float) else last_acc,
                makespan_ms=b.get("makespan_ms"),
                failed=int(b.get("failed") or 0),
                points=points,
                cost_basis=basis,
                reached=chain.time_to(points, TARGET_ACCURACY),
            )
        )
    out.sort(key=lambda t: (t.workload, t.target, t.workers, t.memory_mb or 0, t.repeat))
    return out


# -- charts ---------------------------------------------------------------------------------


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 600 else f"{s / 60:.1f} min"


def _fmt_dollars(usd: float) -> str:
    return f"${usd:.2g}" if usd < 0.01 else f"${usd:,.2f}"


def _series_name(t: Training, *, cost: bool) -> str:
    name = f"{t.target}, {workers_text(t.workers)}"
    if t.variant:
        name += f", {t.variant}"
    if cost and t.cost_model:
        name += " (model)"
    return name


def _chart(
    trains: Sequence[Training],
    *,
    title: str,
    x_title: str,
    x_of: Callable[[dict[str, Any]], Any],
    x_format: Callable[[float], str],
    cost: bool,
    y_labels: list[float],
) -> bytes:
    """One accuracy chart, drawn and made inert by :mod:`serverless_hpc.charts`, with
    :data:`TARGET_ACCURACY` as its marked level."""
    xs = [float(x_of(p)) for t in trains for p in t.points if x_of(p) is not None]
    made = charting.chart(
        "XY",
        marked=[TARGET_ACCURACY],
        title=title,
        x_title=x_title,
        y_title="test accuracy",
        x_value_formatter=x_format,
        value_formatter=lambda v: f"{v:.2f}",
        y_labels=y_labels,
        range=(y_labels[0], y_labels[-1]),
        xrange=_x_range(xs),
    )
    for t in trains:
        pts = [
            (float(x_of(p)), float(p["accuracy"]))
            for p in t.points
            if isinstance(p.get("accuracy"), int | float) and x_of(p) is not None
        ]
        made.add(_series_name(t, cost=cost), pts)
    return charting.compose([charting.render(made)])


def _x_range(xs: Sequence[float]) -> tuple[float, float]:
    """From 0 (or below, for a point a skewed clock puts before the first request) to a bit
    past the last point; never an empty range (pygal divides by its width)."""
    low = min(0.0, *xs) if xs else 0.0
    high = max(xs, default=0.0) * 1.05
    return (low, high) if high > low else (low, low + 1.0)


def _accuracy_ticks(trains: Sequence[Training]) -> list[float]:
    """Accuracy ticks every 0.05 from below the lowest point to 1, :data:`TARGET_ACCURACY`
    among them (the chart's marked level: the one major guide line, solid)."""
    accs = [
        float(p["accuracy"])
        for t in trains
        for p in t.points
        if isinstance(p.get("accuracy"), int | float)
    ]
    low = min(min(accs, default=TARGET_ACCURACY), TARGET_ACCURACY)
    start = max(0, math.floor(low * 20) - 1)
    return [round(i / 20, 2) for i in range(start, 21)]


def charts(trains: Sequence[Training]) -> dict[str, bytes]:
    """The two SVG charts (UTF-8 documents, as :mod:`.plots` makes them), by file name: test
    accuracy against elapsed time and against cost, one series per training (target and
    worker count; memory and repeat when they vary).

    The cost chart holds the trainings with a cost; its title and each modelled series say
    "model". Empty when no training has an accuracy curve.
    """
    curved = [t for t in trains if t.accuracy_per_epoch]
    if not curved:
        return {}
    y_labels = _accuracy_ticks(curved)
    out = {
        TIME_CHART: _chart(
            curved,
            title=f"Test accuracy against elapsed time (solid line: {TARGET_ACCURACY:.2f})",
            x_title="elapsed time since the training's first request (s)",
            x_of=lambda p: p["elapsed_s"],
            x_format=_fmt_seconds,
            cost=False,
            y_labels=y_labels,
        )
    }
    priced = [t for t in curved if t.cost_basis]
    if priced:
        model = ""
        if all(t.cost_model for t in priced):
            model = " (model)"
        elif any(t.cost_model for t in priced):
            model = " (model where marked)"
        out[COST_CHART] = _chart(
            priced,
            title=f"Test accuracy against cost{model}",
            x_title=f"cost so far, USD{model}",
            x_of=lambda p: p["cost_usd"],
            x_format=_fmt_dollars,
            cost=True,
            y_labels=y_labels,
        )
    return out
