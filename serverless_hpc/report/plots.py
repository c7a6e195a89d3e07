"""SVG charts of a run, drawn with pygal through :mod:`serverless_hpc.charts` (its one
configuration: sizes, fonts, colours, no script). pygal is imported when a chart is drawn,
never by importing this module.

Which workloads a chart shows comes from each workload spec's ``panels``; a workload this
installation does not know takes part in the fan-out charts when it was run at more than one
fan-out, and in the cold-start charts always. A chart with one panel per workload is one SVG
file with the panels in a grid.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from serverless_hpc import charts, workloads
from serverless_hpc.invocation import Phase
from serverless_hpc.report.data import RunData
from serverless_hpc.report.stats import median
from serverless_hpc.workloads.spec import Panel

#: Legend labels of the cold-start phases (the one enumeration every target reports); keys a
#: record names beyond these (an older run's) are drawn under their own name.
PART_LABELS: Final = {p.value: Phase.label(p) for p in Phase}


def in_panel(workload: str, panel: Panel, rows: Sequence[dict[str, Any]] = ()) -> bool:
    """Whether ``workload`` takes part in ``panel`` (its spec says; unknown ones: by data)."""
    spec = workloads.specs().get(workload)
    if spec is not None:
        return panel in spec.panels
    if panel in (Panel.LATENCY, Panel.MAKESPAN):
        return len({r["shards"] for r in rows if r["workload"] == workload}) > 1
    return panel in (Panel.COLD_WARM, Panel.BREAKDOWN)


def _colors(present: Sequence[str], every: Sequence[str]) -> list[str]:
    """Series colours for ``present`` keys so that a key has one colour in every panel."""
    return [charts.PALETTE[list(every).index(k) % len(charts.PALETTE)] for k in present]


def make_plots(
    data: RunData,
    rows: Sequence[dict[str, Any]],
    configs: Sequence[dict[str, Any]] = (),
    projected: Sequence[dict[str, Any]] = (),
) -> dict[str, bytes]:
    """SVG charts by file name (only those with something to show)."""
    plots: dict[str, bytes] = {}
    plots.update(_fanout_plots(rows))
    plots.update(_cold_plots(data))
    plots.update(_pareto_plot(configs))
    plots.update(_projection_plot(projected))
    return plots


def _point(x: float, y: float, low: float | None, high: float | None) -> Any:
    """An XY point, with its 95% CI when it has one (pygal draws it as a whisker)."""
    if low is None or high is None:
        return (x, y)
    return {"value": (x, y), "ci": {"low": low, "high": high}}


def _fanout_plots(rows: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    names = sorted({r["workload"] for r in rows})
    targets = sorted({r["target"] for r in rows})
    for metric, fname, ylabel, panel in (
        (
            "median_ms",
            "latency_by_fanout.svg",
            "median invocation latency (ms, client side)",
            Panel.LATENCY,
        ),
        (
            "makespan_median_ms",
            "makespan_by_fanout.svg",
            "makespan: first send to last reply (ms)",
            Panel.MAKESPAN,
        ),
    ):
        # A workload measured at one fan-out only has no curve to draw: the table says it.
        fanned = [
            w
            for w in names
            if in_panel(w, panel, rows)
            and len({r["shards"] for r in rows if r["workload"] == w}) > 1
        ]
        lo_key = "ci95_low_ms" if metric == "median_ms" else "makespan_ci95_low_ms"
        hi_key = lo_key.replace("low", "high")
        panels = []
        for workload in fanned:
            lines: dict[str, list[dict[str, Any]]] = {}
            for target in targets:
                sel = sorted(
                    (
                        r
                        for r in rows
                        if r["workload"] == workload
                        and r["target"] == target
                        and r["mode"] == "natural"
                        and r[metric] is not None
                    ),
                    key=lambda r: r["shards"],
                )
                if sel:
                    lines[target] = sel
            if not lines:
                continue
            sel_all = [r for sel in lines.values() for r in sel]
            ys = [r[metric] for r in sel_all]
            ys += [r[k] for r in sel_all for k in (lo_key, hi_key) if r[k] is not None]
            made = charts.chart(
                "XY",
                colors=_colors(list(lines), targets),
                title=f"{workload}: by fan-out",
                # Not "in parallel": only the target's concurrency runs at once; the rest queue.
                x_title="shards (fan-out)",
                y_title=ylabel,
                x_labels=sorted({r["shards"] for r in sel_all}),
                range=charts.padded(min(ys), max(ys)),
            )
            for target, sel in lines.items():
                made.add(
                    target, [_point(r["shards"], r[metric], r[lo_key], r[hi_key]) for r in sel]
                )
            panels.append(charts.render(made))
        if panels:
            plots[fname] = charts.compose(panels)
    return plots


def _cold_plots(data: RunData) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    ok = [r for r in data.records if r["ok"]]
    # Cold vs warm: every successful record, whatever its mode, split by its cold flag.
    pairs = sorted(
        {(r["target"], r["workload"]) for r in ok if in_panel(r["workload"], Panel.COLD_WARM)}
    )
    if pairs:
        by_pair: dict[tuple[str, str, bool], list[float]] = {}
        for r in ok:
            by_pair.setdefault((r["target"], r["workload"], bool(r["cold"])), []).append(
                r["client_ms"]
            )
        bars = {
            flag: [
                statistics.median(by_pair[(t, w, flag)]) if (t, w, flag) in by_pair else None
                for t, w in pairs
            ]
            for flag in (True, False)
        }
        drawn = [v for vals in bars.values() for v in vals if v is not None and v > 0]
        if drawn:
            made = charts.chart(
                "Bar",
                # Room for each "target / workload" label; past twice a panel's width the
                # labels turn instead, so the text is not shrunk to fit the page.
                width=min(2 * charts.WIDTH, max(charts.WIDTH, 180 * len(pairs))),
                title="cold vs warm invocations",
                y_title="median latency (ms)",
                x_labels=[f"{t} / {w}" for t, w in pairs],
                x_label_rotation=30 if 180 * len(pairs) > 2 * charts.WIDTH else 0,
                **charts.log_axis(drawn),
            )
            made.add("cold", bars[True])
            made.add("warm", bars[False])
            plots["cold_vs_warm.svg"] = charts.compose([charts.render(made)])

    # Cold-start breakdown: median of each phase over cold records, one panel per workload
    # with its own scale (a training cold start is minutes, a classify one < 1 s).
    cold = [
        r
        for r in ok
        if r["cold"] and isinstance(r.get("breakdown"), dict) and r["breakdown"]
        if in_panel(r["workload"], Panel.BREAKDOWN)
    ]
    breakdown = _breakdown_panels(cold)
    if breakdown:
        plots["cold_start_breakdown.svg"] = breakdown
    return plots


def _breakdown_panels(cold: Sequence[dict[str, Any]]) -> bytes | None:
    """One stacked bar panel per workload: each cold-start phase's median, per target."""
    parts = dict(PART_LABELS)
    for r in cold:
        for k in r["breakdown"]:
            parts.setdefault(k, k.removesuffix("_ms").replace("_", " "))
    cold_by: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in cold:  # grouped once: a large run has many cold records
        cold_by[(r["workload"], r["target"])].append(r)
    panels = []
    for workload in sorted({w for w, _ in cold_by}):
        sel_targets = sorted({t for w, t in cold_by if w == workload})
        stacks: dict[str, list[float]] = {}
        for part, label in parts.items():
            vals = [
                median(r["breakdown"].get(part) for r in cold_by[(workload, target)]) or 0.0
                for target in sel_targets
            ]
            if any(vals):
                stacks[label] = vals
        if not stacks:
            continue
        made = charts.chart(
            "StackedBar",
            colors=_colors(list(stacks), list(parts.values())),
            title=f"{workload}: where a cold start's time goes",
            y_title="ms (median over cold starts)",
            x_labels=sel_targets,
        )
        for label, vals in stacks.items():
            made.add(label, vals)
        panels.append(charts.render(made))
    return charts.compose(panels) if panels else None


def _pareto_plot(configs: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """Time to result against cost per job, one panel per workload; the front is joined."""
    pts = [
        c
        for c in configs
        if c["time_ms"] is not None
        and c["cost_usd"] is not None
        # Both axes are logarithmic: a free configuration has no place on them.
        and c["time_ms"] > 0
        and c["cost_usd"] > 0
    ]
    # One configuration of a workload is no trade-off to look at: the table says it.
    names = sorted(
        w for w in {c["workload"] for c in pts} if sum(c["workload"] == w for c in pts) > 1
    )
    if not names:
        return {}

    def groups(mine: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
        """The points by legend label: target, "(cost: model)" when the cost is a model."""
        out: dict[str, list[dict[str, Any]]] = {}
        for c in sorted(mine, key=lambda c: (c["target"], c["cost_basis"] != "measured")):
            suffix = "" if c["cost_basis"] == "measured" else " (cost: model)"
            out.setdefault(c["target"] + suffix, []).append(c)
        return list(out.items())

    every = sorted({label for label, _ in groups([c for c in pts if c["workload"] in names])})
    panels = []
    for workload in names:
        mine = [c for c in pts if c["workload"] == workload]
        mine_groups = groups(mine)
        front = sorted((c for c in mine if c["pareto"]), key=lambda c: c["time_ms"])
        made = charts.chart(
            "XY",
            colors=[charts.ALERT, *_colors([label for label, _ in mine_groups], every)],
            title=f"{workload}: time against cost (labels: shards, memory)",
            x_title="time to result (s, median job)",
            y_title="cost per job (USD)",
            print_labels=True,
            # Room on the right for the labels of the slowest points.
            **charts.xy_log_axes(
                [c["time_ms"] / 1e3 for c in mine], [c["cost_usd"] for c in mine], x_room=1.6
            ),
        )
        # The front first: drawn under the points, in the alert colour, joined.
        made.add(
            "Pareto front",
            [(c["time_ms"] / 1e3, c["cost_usd"]) for c in front],
            stroke_style={"width": 6, "linecap": "round", "linejoin": "round"},
            dots_size=9,
        )
        for label, group in mine_groups:
            made.add(
                label,
                [
                    {
                        "value": (c["time_ms"] / 1e3, c["cost_usd"]),
                        "label": f"{c['shards']}"
                        + (f", {c['memory_mb']:.0f} MB" if c.get("memory_mb") else ""),
                    }
                    for c in group
                ],
                stroke=False,
            )
        panels.append(charts.render(made))
    return {"pareto_time_cost.svg": charts.compose(panels)}


def _projection_plot(projected: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """MODEL: projected Lambda makespan and cost by fan-out (flagged plans left out); one row
    of two panels (makespan, cost) per workload, fan-out on a log axis; warm lines dashed."""
    ok = [p for p in projected if not p["flags"]]
    names = sorted({p["workload"] for p in ok})
    if not names:
        return {}
    panels = []
    for workload in names:
        mine = [p for p in ok if p["workload"] == workload]
        sizes = sorted({p["memory_mb"] for p in mine})
        to_x, x_axis = charts.log_x([p["fanout"] for p in mine])
        for cold_key, warm_key, ylabel, scale in (
            ("cold_makespan_ms", "warm_makespan_ms", "makespan (s)", 1e3),
            ("cold_cost_usd", "warm_cost_usd", "cost per job (USD)", 1.0),
        ):
            ys = [p[k] / scale for p in mine for k in (cold_key, warm_key)]
            made = charts.chart(
                "XY",
                title=f"MODEL: {workload} projected to Lambda",
                x_title="shards (fan-out)",
                y_title=ylabel,
                range=charts.padded(min(ys), max(ys)),
                **x_axis,
            )
            for mem in sizes:
                sel = sorted((p for p in mine if p["memory_mb"] == mem), key=lambda p: p["fanout"])
                made.add(f"{mem} MB cold", [(to_x(p["fanout"]), p[cold_key] / scale) for p in sel])
                made.add(
                    f"{mem} MB warm",
                    [(to_x(p["fanout"]), p[warm_key] / scale) for p in sel],
                    stroke_style={"width": 2, "dasharray": "6, 4"},
                    show_dots=False,
                )
            panels.append(charts.render(made))
    return {
        "projection_lambda_model.svg": charts.compose(
            panels, title="Projection (a model, not a measurement)"
        )
    }


def verdict_plot(curves: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """MODEL: cost per job against jobs per hour, functions and a VM, one panel per workload
    (both axes logarithmic): where the lines cross, the answer changes. ``curves`` are
    :func:`serverless_hpc.report.verdict.table` rows."""
    ok = [
        c
        for c in curves
        if c["functions"] is not None
        and c["vm"] is not None
        and c["functions"]["cost_per_job_usd"] > 0
        and c["vm"]["cost_per_job_usd"] > 0
    ]
    names = sorted({c["workload"] for c in ok})
    if not names:
        return {}
    panels = []
    for workload in names:
        mine = sorted(
            (c for c in ok if c["workload"] == workload), key=lambda c: c["jobs_per_hour"]
        )
        rates = [float(c["jobs_per_hour"]) for c in mine]
        costs = [c[side]["cost_per_job_usd"] for c in mine for side in ("functions", "vm")]
        made = charts.chart(
            "XY",
            title=f"MODEL: {workload}: cost per job, functions or a VM",
            x_title="jobs per hour",
            y_title="cost per job (USD)",
            **charts.xy_log_axes(rates, costs),
        )
        for side, label in (("functions", "functions (best plan)"), ("vm", "VM (cheapest way)")):
            made.add(
                label,
                [
                    {
                        "value": (float(c["jobs_per_hour"]), c[side]["cost_per_job_usd"]),
                        "label": c[side]["config"],
                    }
                    for c in mine
                ],
            )
        panels.append(charts.render(made))
    return {
        "verdict_cost_by_rate_model.svg": charts.compose(
            panels, title="Functions or a VM (a model, not a measurement)"
        )
    }
