"""Build a run's report: summary.csv/.md, SVG charts, headline.json and report.html.

``python -m serverless_hpc.report DIR`` does it in its own process: ``shpc bench`` builds
its report that way, so the report's statistics, templates and charting library never
weigh on the driver's memory, and a crash there cannot lose the records.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serverless_hpc import picks
from serverless_hpc.report import cloud, decision, html, projection, training, verdict
from serverless_hpc.report.checks import checks
from serverless_hpc.report.coupled_answer import from_run as coupled_from_run
from serverless_hpc.report.data import RunData, bad_line_notes, load_run
from serverless_hpc.report.headline import headline
from serverless_hpc.report.plots import make_plots, verdict_plot
from serverless_hpc.report.profile import load_profile
from serverless_hpc.report.tables import MD_COLUMNS, markdown_table, summarize, write_csv
from serverless_hpc.report.timeline import batch_timelines
from serverless_hpc.rundir import HEADLINE, REPORT_HTML, paths
from serverless_hpc.rundir.files import MEMORY_CSV, SUMMARY_CSV, SUMMARY_MD

#: Arrival rates (jobs per hour) the verdict chart draws both sides at.
VERDICT_CHART_RATES = tuple(10.0 ** (k / 4) for k in range(-4, 21))
#: At most this many failed invocations are listed one by one.
MAX_FAILURES_LISTED = 200


def build_report(
    out: Path, *, plots: bool = True, jobs_per_hour: tuple[float, float] | None = None
) -> dict[str, Path]:
    """Write the report files into ``out``; the paths written, by name.

    ``jobs_per_hour`` (a rate as (r, r), or a range) is what the verdict answers for
    (default :data:`~serverless_hpc.report.cloud.DEFAULT_RATES`).

    FileNotFoundError when ``out`` holds no records.jsonl. The cyclic garbage collector is
    paused meanwhile: a run's records are many small, acyclic objects that the collector
    would traverse again and again as they are read (half the time of a large report).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(out, plots=plots, rates=jobs_per_hour or cloud.DEFAULT_RATES)
    finally:
        if enabled:
            gc.enable()


def _build(out: Path, *, plots: bool, rates: tuple[float, float]) -> dict[str, Path]:
    from serverless_hpc.pricing_data import load_prices

    data = load_run(out)
    rows = summarize(data.records, data.batches, index=data.index())
    prices = load_prices()
    profile = load_profile()
    memory = _memory_sizes(data, rows, prices)
    files = paths(out)
    written = {SUMMARY_CSV: files.summary_csv, SUMMARY_MD: files.summary_md}
    if memory:
        written[MEMORY_CSV] = files.memory_csv
        written[MEMORY_CSV].write_text(picks.to_csv(memory), encoding="utf-8")
    write_csv(rows, written[SUMMARY_CSV])
    written[SUMMARY_MD].write_text(markdown_table(rows), encoding="utf-8")
    configs = decision.configurations(data, rows, prices, profile)
    trains = training.trainings(data, prices, profile)
    break_even = decision.break_even(configs, prices)
    opts = cloud.Options(rates=rates)
    verdicts = verdict.verdicts(data, configs, prices, profile, opts)
    head = headline(
        data,
        rows,
        break_even,
        vm_type=profile.vm_instance_type,
        trains=trains,
        verdict=verdicts,
        jobs_per_hour=rates,
    )
    written[HEADLINE] = files.headline
    written[HEADLINE].write_text(json.dumps(head, indent=2), encoding="utf-8")
    projected = projection.projection(data, profile, prices)
    images = make_plots(data, rows, configs, projected) if plots else {}
    if plots:
        curves = verdict.table(data, configs, prices, profile, opts, rates=VERDICT_CHART_RATES)
        images.update(verdict_plot(curves))
    if plots and memory:
        table = picks.size_table(data.records, prices)
        svg = picks.plot_memory(table, picks.picks(table))
        if svg is not None:
            images["time_and_cost_by_memory.svg"] = svg
    svgs = training.charts(trains) if plots else {}
    for name, svg in (images | svgs).items():
        (out / name).write_bytes(svg)
        written[name] = out / name
    page = render_report(
        data,
        rows,
        images,
        head=head,
        configs=configs,
        break_even=break_even,
        projected=projected,
        memory=memory,
        trains=trains,
        training_charts=svgs,
        opts=opts,
    )
    written[REPORT_HTML] = files.report
    written[REPORT_HTML].write_text(page, encoding="utf-8")
    return written


def render_report(
    data: RunData,
    rows: Sequence[dict[str, Any]],
    images: dict[str, bytes],
    *,
    head: dict[str, Any] | None = None,
    configs: Sequence[dict[str, Any]] | None = None,
    break_even: Sequence[dict[str, Any]] | None = None,
    projected: Sequence[dict[str, Any]] | None = None,
    memory: Sequence[dict[str, Any]] | None = None,
    trains: Sequence[training.Training] | None = None,
    training_charts: dict[str, bytes] | None = None,
    opts: cloud.Options | None = None,
) -> str:
    """The self-contained report page; ``images`` and ``training_charts`` are SVG documents
    (UTF-8, as written to their files) by file name. What is not given is worked out from
    ``data`` (:func:`build_report` gives what it has already worked out)."""
    from serverless_hpc.pricing_data import load_prices

    prices = load_prices()
    profile = load_profile()
    if configs is None:
        configs = decision.configurations(data, rows, prices, profile)
    if break_even is None:
        break_even = decision.break_even(configs, prices)
    if projected is None:
        projected = projection.projection(data, profile, prices)
    if memory is None:
        memory = _memory_sizes(data, rows, prices)
    if trains is None:
        trains = training.trainings(data, prices, profile)
    opts = opts or cloud.DEFAULT_OPTIONS
    if head is None:
        head = headline(data, rows, verdict=verdict.verdicts(data, configs, prices, profile, opts))
    return html.render(
        "report.html.j2",
        run_id=data.run_id,
        headline=head,
        verdict_rows=[v for _, v in sorted(head.get("verdict", {}).items())],
        rate_rows=verdict.table(data, configs, prices, profile, opts),
        vm_rows=verdict.vm_types(data, configs, prices, profile, opts),
        catalogue=sorted(prices.ec2.instances.values(), key=lambda i: (i.burst is None, i.hourly)),
        boot_s=prices.ec2.boot_to_ready_s,
        credit_mode=opts.credit_mode or profile.vm_credit_mode,
        checks=checks(data),
        columns=MD_COLUMNS,
        rows=rows,
        plots=[(name, html.inline_svg(svg)) for name, svg in images.items()],
        configs=configs,
        vm_type=profile.vm_instance_type,
        break_even_rows=break_even,
        invocation_break_even=decision.per_invocation_break_even(data, prices),
        prices_region=prices.region,
        prices_as_of=prices.as_of,
        profile=profile,
        projected=projected,
        validation=projection.against_measurement(data, projected),
        timelines=batch_timelines(data.records, data.batches, index=data.index()),
        trains=training.trained_models(data),
        trainings=trains,
        training_model=any(t.cost_model for t in trains),
        training_charts=[
            (name, html.inline_svg(svg)) for name, svg in (training_charts or {}).items()
        ],
        accuracy_target=training.TARGET_ACCURACY,
        coupled=coupled_from_run(data.out, data.batches, profile),
        failures=[r for r in data.records if not r["ok"]][:MAX_FAILURES_LISTED],
        skipped=data.meta.get("skipped") or [],
        environment=html.environment_rows(data.meta),
        memory_rows=memory,
        memory_columns=picks.COLUMNS,
        memory_rules=picks.RULES,
        memory_model=any(r["cost_basis"] == picks.MODEL for r in memory),
    )


def _memory_sizes(
    data: RunData, rows: Sequence[dict[str, Any]], prices: Any
) -> list[dict[str, Any]]:
    """Time and cost at each memory size with the picks (:mod:`serverless_hpc.picks`); marks
    the picked sizes' summary rows (``memory_pick``). Empty without a memory sweep."""
    table = picks.size_table(data.records, prices)
    found = picks.picks(table)
    labels = picks.pick_labels(found)
    for row in rows:
        if row["mode"] == "natural":
            key = (row["target"], row["workload"], row["shards"], row["memory_mb"])
            row["memory_pick"] = labels.get(key, "")
    return picks.rows(table, found)


def terminal_summary(out: Path) -> str:
    """What ``shpc bench`` and ``shpc report`` print: the headline, then notes on the data.

    Read from ``headline.json`` (written by :func:`build_report`), so the driver needs
    neither the charting library nor the statistics to print it.
    """
    head = json.loads(paths(out).headline.read_text(encoding="utf-8"))
    if "answer" not in head:  # a report built before the verdict
        lines = ["The answer (from the summary rows cited):"]
        lines += [f"  - {s}" for s in head.get("sentences", [])]
        lines += [f"note: {n}" for n in head.get("notes", [])]
        return "\n".join(lines)
    incomplete = [s for s in head.get("sentences", []) if s.startswith("Incomplete run:")]
    lines = ["The answer: functions or a VM in the cloud"]
    lines += [f"  - {s}" for s in incomplete + head["answer"]]
    if head.get("more"):
        lines.append(
            "More (the emulation check on this machine, cold starts, trainings; rows cited):"
        )
        lines += [f"  - {s}" for s in head["more"]]
    lines += [f"note: {n}" for n in head.get("notes", [])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serverless_hpc.report RUN_DIR``: build the report; print the files written.

    Exit codes: 0 written; 2 not a run directory.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m serverless_hpc.report",
        description="build summary, plots, headline.json and report.html from a run directory",
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--no-plots", action="store_true", help="skip the SVG charts (fastest)")
    parser.add_argument(
        "--jobs-per-hour",
        metavar="RATE",
        help="the arrival rate the verdict answers for: a value or a range (10, 1-1000)",
    )
    args = parser.parse_args(argv)
    try:
        rates = cloud.parse_rate(args.jobs_per_hour) if args.jobs_per_hour else None
        written = build_report(args.run_dir, plots=not args.no_plots, jobs_per_hour=rates)
    except (FileNotFoundError, cloud.OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


__all__ = ["bad_line_notes", "build_report", "main", "render_report", "terminal_summary"]
