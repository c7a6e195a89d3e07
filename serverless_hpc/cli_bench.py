"""``shpc bench``: its options, the configuration they describe, and the run.

The plan's options take their defaults from :mod:`serverless_hpc.driver.config` (declared
once there); each workload's own options (``--images``, ``--train-epochs``...) come from the
``options`` its spec declares, so a workload package brings its flags with it (see
docs/design.md, "The workload spec").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from serverless_hpc.cli_args import (
    EXIT_FAILED_INVOCATIONS,
    EXIT_OK,
    EXIT_REPORT_FAILED,
    add_jobs_per_hour,
    add_target_options,
    check_model_params,
    check_store_option,
    csv_list,
    int_list,
    print_error,
    target_settings,
    with_data,
    workload_param,
)


def add_bench_parser(sub: Any) -> None:
    """The ``bench`` sub-command, its options and defaults."""
    from serverless_hpc import driver, workloads

    d = driver.default
    b = sub.add_parser(
        "bench",
        help="run the benchmark and write records, summary, plots and report",
    )
    b.add_argument(
        "--targets",
        type=csv_list,
        default=d("targets"),
        help=f"comma-separated targets (default: {','.join(d('targets'))})",
    )
    b.add_argument(
        "--workloads",
        type=csv_list,
        default=d("workloads"),
        help=f"comma-separated workloads (default: {','.join(d('workloads'))}; "
        f"known: {','.join(workloads.names())})",
    )
    b.add_argument(
        "--param",
        type=workload_param,
        action="append",
        metavar="WORKLOAD.KEY=VALUE",
        help="a request parameter of a workload's planned invocations (repeatable), "
        "e.g. matmul.n=1024; checked against the workload's declared options",
    )
    b.add_argument(
        "--shards",
        type=int_list,
        default=d("shards"),
        help=f"fan-out levels (default {','.join(map(str, d('shards')))})",
    )
    b.add_argument(
        "--repeats",
        type=int,
        default=d("repeats"),
        help=f"repeats per fan-out level (default {d('repeats')}: the fewest for a 95%% CI "
        "of a median)",
    )
    b.add_argument(
        "--modes",
        type=csv_list,
        default=d("modes"),
        help=f"natural and/or cold (forced cold starts) (default: {' and '.join(d('modes'))})",
    )
    b.add_argument(
        "--cold-repeats",
        type=int,
        default=d("cold_repeats"),
        help=f"repeats per fan-out level in cold mode (default {d('cold_repeats')})",
    )
    _add_training_options(b)
    _add_workload_options(b)
    b.add_argument("--out", type=Path, help="run directory (default results/<run-id>)")
    b.add_argument("--run-id", help="run id (default: UTC time + random suffix)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.add_argument(
        "--yes",
        action="store_true",
        help=f"run a plan of more than {driver.CONFIRM_ABOVE:,} invocations (refused without it)",
    )
    add_target_options(b)
    add_jobs_per_hour(b)
    b.set_defaults(func=cmd_bench)


def _add_training_options(b: argparse.ArgumentParser) -> None:
    """The plan's options for the long-running workloads (any spec with ``long_running``)."""
    from serverless_hpc import driver

    d = driver.default
    b.add_argument(
        "--train-repeats",
        type=int,
        default=d("train_repeats"),
        help=f"runs of each long-running workload per target (default {d('train_repeats')})",
    )
    b.add_argument(
        "--train-workers",
        type=int_list,
        default=d("train_workers"),
        help="functions a data-parallel workload runs on, with model averaging; each count "
        f"is a plan point (e.g. 1,2,4; default {','.join(map(str, d('train_workers')))})",
    )
    b.add_argument(
        "--train-on",
        type=csv_list,
        metavar="TARGETS",
        help="targets that run the long-running workloads, listed first in --targets "
        "(default: every target); the others read the model version they wrote (the local "
        "targets share one model store)",
    )


def _add_workload_options(b: argparse.ArgumentParser) -> None:
    """One flag per option a workload declares with a ``flag`` (shared by every workload
    that declares the same flag)."""
    from serverless_hpc import workloads
    from serverless_hpc.workloads.spec import Option, WorkloadSpec

    flags: dict[str, list[tuple[WorkloadSpec, Option]]] = {}
    for spec in workloads.specs().values():
        for option in spec.options:
            if option.flag:
                flags.setdefault(option.flag, []).append((spec, option))
    if not flags:
        return
    g = b.add_argument_group("workload options (declared by the workloads' specs)")
    for flag, owners in flags.items():
        spec, option = owners[0]
        default = spec.plan_params.get(option.param)
        where = ", ".join(f"{s.name}.{o.param}" for s, o in owners)
        shown = f"; default {default}" if default is not None else ""
        kind = option.kind
        g.add_argument(
            f"--{flag.replace('_', '-')}",
            dest=flag,
            type=_bool if kind is bool else kind,
            choices=option.choices or None,
            help=f"{option.describe()} ({where}{shown})",
        )


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


#: Bound on building the report in its child process (a few seconds normally).
REPORT_TIMEOUT_S = 600.0


def workload_params(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-workload request parameters from ``--param`` and the workloads' own flags.

    A flag sets its parameter on every planned workload that declares it (``--images`` with
    ``--workloads dataproc`` is harmless); ``--param`` must name a planned workload.
    """
    from serverless_hpc import workloads

    out: dict[str, dict[str, Any]] = {}
    for spec in workloads.specs().values():
        if spec.name not in args.workloads:
            continue
        for option in spec.options:
            value = getattr(args, option.flag, None) if option.flag else None
            if value is not None:
                out.setdefault(spec.name, {})[option.param] = value
    for workload, key, value in args.param or ():
        out.setdefault(workload, {})[key] = value
    return out


def bench_config(args: argparse.Namespace, out: Path, run_id: str = "") -> Any:
    """The experiment ``shpc bench`` options describe, validated (``BenchError`` naming the
    option at fault); the dataset is not looked at yet. The dashboard validates with it too.
    """
    from serverless_hpc import driver

    params = workload_params(args)
    check_store_option(args.store, reach=False)
    check_model_params(params)
    return driver.BenchConfig(
        out=out,
        targets=args.targets,
        workloads=args.workloads,
        shards=args.shards,
        repeats=args.repeats,
        train_repeats=args.train_repeats,
        train_workers=tuple(args.train_workers),
        train_on=tuple(args.train_on or ()),
        modes=args.modes,
        cold_repeats=args.cold_repeats,
        memory_mb=args.memory_mb or (),
        params=params,
        settings=target_settings(args, out),
        run_id=run_id,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, then build the report (in a child process:
    :func:`build_report_child`)."""
    import dataclasses

    from serverless_hpc import driver
    from serverless_hpc.rundir import check_run_id

    run_id = check_run_id(args.run_id) if args.run_id else driver.new_run_id()
    out = (args.out or Path("results") / run_id).resolve()
    driver.check_out_dir(out)  # before anything is created (claimed and checked again below)
    cfg = bench_config(args, out, run_id)
    driver.check_plan_size(cfg, confirmed=args.yes)
    check_store_option(args.store, reach=True)
    # Held until the report is built: a second run on the same --out is refused meanwhile.
    with driver.claim_out_dir(out, run_id) as lock:
        if lock.stale is not None:
            print(
                f"warning: {out} was claimed by a run that ended without releasing it "
                f"({lock.stale.describe()}): it was killed or crashed",
                file=sys.stderr,
            )
        cfg = dataclasses.replace(cfg, settings=with_data(cfg.settings, args))
        return _bench_claimed(args, cfg, lock)


def _bench_claimed(args: argparse.Namespace, cfg: Any, lock: Any) -> int:
    """The rest of :func:`cmd_bench`, with the run directory claimed."""
    from serverless_hpc import driver
    from serverless_hpc.rundir import paths

    out, run_id = cfg.out, cfg.run_id
    bars = _ProgressBars(enabled=not args.quiet)
    try:
        result = driver.run(
            cfg,
            progress=bars.invocations,
            on_total=bars.total_invocations,
            epoch_progress=bars.epochs,
            on_epochs=bars.total_epochs,
            lock=lock,
        )
    finally:
        bars.close()
    print(f"run {run_id}: {result.records} invocations, {result.failed} failed")
    report_error = build_report_child(out, getattr(args, "jobs_per_hour", None))
    if report_error is None:
        from serverless_hpc.report.build import terminal_summary

        print(terminal_summary(out))
        print()
        print(paths(out).summary_md.read_text(encoding="utf-8"))
    if len(cfg.memory_mb) > 1:
        _print_memory_picks(out)
    print(f"records: {paths(out).records}")
    if report_error is None:
        print(f"report:  {paths(out).report}")
    for skip in result.skipped:
        print_error(f"skipped {skip['workload']} on {skip['target']}: {skip['reason']}")
    if result.failed:
        print_error(f"{result.failed} invocation(s) failed; see the report")
    if report_error is not None:
        print_error(
            f"the report could not be built ({report_error}); the records are kept. "
            f"Rebuild it with: shpc report {out}"
        )
        return EXIT_REPORT_FAILED
    return EXIT_FAILED_INVOCATIONS if result.failed or result.skipped else EXIT_OK


class _ProgressBars:
    """Two bars, each with its own ETA: invocations, and the epochs of chained trainings
    (an epoch takes seconds to minutes, an invocation milliseconds: one bar would mix them)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: dict[str, Any] = {}

    def _bar(self, unit: str) -> Any:
        if unit not in self._bars:
            from tqdm import tqdm

            self._bars[unit] = tqdm(
                total=0,
                unit=unit,
                desc="invocations" if unit == "inv" else "epochs",
                position=len(self._bars),
                file=sys.stderr,
                dynamic_ncols=True,
            )
        return self._bars[unit]

    def _total(self, unit: str, n: int) -> None:
        if self.enabled:
            bar = self._bar(unit)
            bar.total = n
            bar.refresh()

    def total_invocations(self, n: int) -> None:
        """The invocations to come (it shrinks when batches are skipped)."""
        self._total("inv", n)

    def total_epochs(self, n: int) -> None:
        """The epochs of the chained trainings to come."""
        self._total("epoch", n)

    def invocations(self, n: int) -> None:
        """``n`` more invocations done."""
        if self.enabled:
            self._bar("inv").update(n)

    def epochs(self, n: int) -> None:
        """``n`` more epochs done."""
        if self.enabled:
            self._bar("epoch").update(n)

    def close(self) -> None:
        """Close every bar."""
        for bar in self._bars.values():
            bar.close()


def _print_memory_picks(out: Path) -> None:
    """Time and cost at each memory size and the picks (pure computation, no chart)."""
    from serverless_hpc import picks
    from serverless_hpc.pricing_data import load_prices
    from serverless_hpc.rundir import paths, read_records

    table = picks.size_table(read_records(paths(out).records), load_prices())
    text = picks.markdown(table, picks.picks(table))
    if text:
        print("Which memory size:\n" + text)


def build_report_child(out: Path, jobs_per_hour: str | None = None) -> str | None:
    """Build the report of ``out`` in a child process; None on success, else what went wrong.

    A child keeps the report's libraries (Jinja2, pygal) and its working set out of the
    driver, whose peak memory is budgeted, and a crash or hang there (bounded by
    :data:`REPORT_TIMEOUT_S`) cannot lose the records.
    """
    import subprocess

    argv = [sys.executable, "-m", "serverless_hpc.report", str(out)]
    if jobs_per_hour:
        argv += ["--jobs-per-hour", jobs_per_hour]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return f"no result within {REPORT_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"could not start {sys.executable}: {exc}"
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"exit code {done.returncode}: {lines[-1] if lines else 'no output'}"
