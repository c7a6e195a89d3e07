"""PNG plots. matplotlib is imported inside :func:`make_plots` only (Agg, no display needed).

Which workloads a plot shows comes from each workload spec's ``panels``; a workload this
installation does not know takes part in the fan-out plots when it was run at more than one
fan-out, and in the cold-start plots always.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from typing import Any, Final

from serverless_hpc import workloads
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


class _Figures:
    """The two pyplot calls the plot functions make, on bare :class:`Figure` objects.

    pyplot is not imported: it costs import time and keeps global figure state, and a report
    needs neither (figures are rendered to PNG bytes, never shown).
    """

    @staticmethod
    def subplots(*args: Any, figsize: Any = None, layout: Any = None, **kw: Any) -> Any:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(*args, **kw)

    @staticmethod
    def close(fig: Any) -> None:
        """Nothing to do: no pyplot registry holds the figure."""


def png(fig: Any) -> bytes:
    """A figure as PNG bytes, drawn once (``bbox_inches="tight"`` would draw it twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def log_axis(ax: Any, which: str) -> None:
    """A log scale with plain tick labels: mathtext labels (``10^2``) cost most of a plot's
    drawing time, and minor labels add clutter, not information."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    # 1-2-5 ticks so that a range within one decade still gets labels.
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def make_plots(
    data: RunData,
    rows: Sequence[dict[str, Any]],
    configs: Sequence[dict[str, Any]] = (),
    projected: Sequence[dict[str, Any]] = (),
) -> dict[str, bytes]:
    """PNG plots by file name (only those with something to show)."""
    plt = _Figures()
    plots: dict[str, bytes] = {}
    plots.update(_fanout_plots(plt, rows))
    plots.update(_cold_plots(plt, data))
    plots.update(_pareto_plot(plt, configs))
    plots.update(_projection_plot(plt, projected))
    return plots


def _fanout_plots(plt: Any, rows: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    names = sorted({r["workload"] for r in rows})
    targets = sorted({r["target"] for r in rows})
    for metric, fname, ylabel, panel in (
        (
            "median_ms",
            "latency_by_fanout.png",
            "median invocation latency (ms, client side)",
            Panel.LATENCY,
        ),
        (
            "makespan_median_ms",
            "makespan_by_fanout.png",
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
        if not fanned:
            continue
        fig, axes = plt.subplots(
            1, len(fanned), figsize=(6 * len(fanned), 4), squeeze=False, layout="constrained"
        )
        lo_key = "ci95_low_ms" if metric == "median_ms" else "makespan_ci95_low_ms"
        hi_key = lo_key.replace("low", "high")
        for ax, workload in zip(axes[0], fanned, strict=True):
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
                if not sel:
                    continue
                xs = [r["shards"] for r in sel]
                ys = [r[metric] for r in sel]
                err = [
                    [
                        y - (r[lo_key] if r[lo_key] is not None else y)
                        for y, r in zip(ys, sel, strict=True)
                    ],
                    [
                        (r[hi_key] if r[hi_key] is not None else y) - y
                        for y, r in zip(ys, sel, strict=True)
                    ],
                ]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=target)
            ax.set_title(f"{workload}: by fan-out")
            # Not "in parallel": only the target's concurrency runs at once; the rest queue.
            ax.set_xlabel("shards (fan-out)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        plots[fname] = png(fig)
        plt.close(fig)
    return plots


def _cold_plots(plt: Any, data: RunData) -> dict[str, bytes]:
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
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(pairs)), 4), layout="constrained")
        width = 0.38
        for i, (target, workload) in enumerate(pairs):
            for off, flag, color in (
                (-width / 2, True, "tab:blue"),
                (width / 2, False, "tab:orange"),
            ):
                vals = by_pair.get((target, workload, flag))
                if vals:
                    ax.bar(
                        i + off,
                        statistics.median(vals),
                        width,
                        color=color,
                        label=("cold" if flag else "warm") if i == 0 else None,
                    )
        ax.set_xticks(range(len(pairs)), [f"{t}\n{w}" for t, w in pairs])
        ax.set_ylabel("median latency (ms)")
        log_axis(ax, "y")
        ax.set_title("cold vs warm invocations")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        plots["cold_vs_warm.png"] = png(fig)
        plt.close(fig)

    # Cold-start breakdown: median of each phase over cold records, one panel per workload
    # with its own scale (a training cold start is minutes, a classify one < 1 s).
    cold = [
        r
        for r in ok
        if r["cold"] and isinstance(r.get("breakdown"), dict) and r["breakdown"]
        if in_panel(r["workload"], Panel.BREAKDOWN)
    ]
    cworkloads = sorted({r["workload"] for r in cold})
    if cworkloads:
        parts = dict(PART_LABELS)
        for r in cold:
            for k in r["breakdown"]:
                parts.setdefault(k, k.removesuffix("_ms").replace("_", " "))
        fig, axes = plt.subplots(
            1,
            len(cworkloads),
            figsize=(4.2 * len(cworkloads), 4),
            squeeze=False,
            layout="constrained",
        )
        for ax, workload in zip(axes[0], cworkloads, strict=True):
            sel_targets = sorted({r["target"] for r in cold if r["workload"] == workload})
            bottoms = [0.0] * len(sel_targets)
            for part, label in parts.items():
                vals = [
                    median(
                        r["breakdown"].get(part)
                        for r in cold
                        if r["target"] == target and r["workload"] == workload
                    )
                    or 0.0
                    for target in sel_targets
                ]
                if not any(vals):
                    continue
                ax.bar(range(len(sel_targets)), vals, bottom=bottoms, label=label)
                bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
            ax.set_xticks(range(len(sel_targets)), sel_targets)
            ax.set_title(f"{workload}: where a cold start's time goes", fontsize=10)
            ax.grid(alpha=0.3, axis="y")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        axes[0][0].set_ylabel("ms (median over cold starts)")
        plots["cold_start_breakdown.png"] = png(fig)
        plt.close(fig)
    return plots


def _pareto_plot(plt: Any, configs: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """Time to result against cost per job, one panel per workload; the front is joined."""
    pts = [c for c in configs if c["time_ms"] is not None and c["cost_usd"] is not None]
    # One configuration of a workload is no trade-off to look at: the table says it.
    names = sorted(
        w for w in {c["workload"] for c in pts} if sum(c["workload"] == w for c in pts) > 1
    )
    if not names:
        return {}
    fig, axes = plt.subplots(
        1, len(names), figsize=(6 * len(names), 4.5), squeeze=False, layout="constrained"
    )
    for ax, workload in zip(axes[0], names, strict=True):
        mine = [c for c in pts if c["workload"] == workload]
        for target in sorted({c["target"] for c in mine}):
            sel = [c for c in mine if c["target"] == target]
            modelled = [c for c in sel if c["cost_basis"] != "measured"]
            measured = [c for c in sel if c["cost_basis"] == "measured"]
            for group, marker, suffix in ((measured, "o", ""), (modelled, "^", " (cost: model)")):
                if group:
                    ax.scatter(
                        [c["time_ms"] / 1e3 for c in group],
                        [c["cost_usd"] for c in group],
                        marker=marker,
                        label=target + suffix,
                        alpha=0.8,
                    )
            for c in sel:
                mem = f", {c['memory_mb']:.0f} MB" if c.get("memory_mb") else ""
                ax.annotate(f"{c['shards']}{mem}", (c["time_ms"] / 1e3, c["cost_usd"]), fontsize=7)
        front = sorted((c for c in mine if c["pareto"]), key=lambda c: c["time_ms"])
        if front:
            ax.plot(
                [c["time_ms"] / 1e3 for c in front],
                [c["cost_usd"] for c in front],
                color="crimson",
                linewidth=2,
                alpha=0.6,
                marker="o",
                markersize=14,
                markerfacecolor="none",
                label="Pareto front",
            )
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("time to result (s, median job)")
        ax.set_ylabel("cost per job (USD)")
        ax.set_title(f"{workload}: time against cost (labels: shards, memory)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    plots = {"pareto_time_cost.png": png(fig)}
    plt.close(fig)
    return plots


def _projection_plot(plt: Any, projected: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """MODEL: projected Lambda makespan and cost by fan-out (flagged plans left out)."""
    ok = [p for p in projected if not p["flags"]]
    names = sorted({p["workload"] for p in ok})
    if not names:
        return {}
    fig, axes = plt.subplots(
        2, len(names), figsize=(6 * len(names), 7), squeeze=False, layout="constrained"
    )
    for col, workload in enumerate(names):
        mine = [p for p in ok if p["workload"] == workload]
        for mem in sorted({p["memory_mb"] for p in mine}):
            sel = sorted((p for p in mine if p["memory_mb"] == mem), key=lambda p: p["fanout"])
            xs = [p["fanout"] for p in sel]
            for row, (cold_key, warm_key, ylabel) in enumerate(
                (
                    ("cold_makespan_ms", "warm_makespan_ms", "makespan (s)"),
                    ("cold_cost_usd", "warm_cost_usd", "cost per job (USD)"),
                )
            ):
                ax = axes[row][col]
                scale = 1e3 if row == 0 else 1.0
                ax.plot(xs, [p[cold_key] / scale for p in sel], marker="o", label=f"{mem} MB cold")
                ax.plot(
                    xs, [p[warm_key] / scale for p in sel], linestyle="--", label=f"{mem} MB warm"
                )
                ax.set_ylabel(ylabel)
                ax.grid(alpha=0.3)
        for ax in axes[:, col]:
            log_axis(ax, "x")
        axes[0][col].set_title(f"MODEL: {workload} projected to Lambda", fontsize=10)
        axes[1][col].set_xlabel("shards (fan-out)")
        axes[0][col].legend(fontsize=7)
    fig.suptitle("Projection (a model, not a measurement)", color="crimson")
    plots = {"projection_lambda_model.png": png(fig)}
    plt.close(fig)
    return plots
