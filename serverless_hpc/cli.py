"""``shpc``: the command line. Imports stay lazy so ``shpc --help`` loads almost nothing.

Exit codes: 0 success; 1 the run finished but some invocations failed (they are recorded);
2 bad usage, an unavailable/misconfigured target, a bad dataset, an output directory in use
or unwritable, a disk that filled up (nothing more could be recorded; what was is kept);
3 the run finished but its report could not be built (the records are kept; ``shpc report
DIR`` rebuilds it); 4 an internal error (a bug: the message says what, ``-v`` shows the
traceback); 128 + N stopped by signal N: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the run is
marked aborted and its records kept). ``shpc compare`` exits 1 when
``--fail-on-regression`` finds a row significantly slower by more than the threshold.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

#: Modules contributing sub-commands through ``add_parser(subparsers)``; each imports only
#: the standard library at module level so ``shpc --help`` stays light.
PLUGIN_COMMANDS: tuple[str, ...] = (
    "serverless_hpc.aws.cli",
    "serverless_hpc.openwhisk.cli",
    "serverless_hpc.serve.cli",
    "serverless_hpc.project",
)

EXIT_OK = 0
EXIT_FAILED_INVOCATIONS = 1
EXIT_USAGE = 2
EXIT_REPORT_FAILED = 3
EXIT_INTERNAL = 4

#: Signals handled as Ctrl-C is: the run stops, its instances are killed, run.json says
#: "aborted" and every record is kept.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)
#: Loggers that print credentials at DEBUG (botocore logs signed request headers): kept at
#: INFO even under -vv.
NOISY_LOGGERS: tuple[str, ...] = ("botocore", "boto3", "s3transfer", "urllib3")
#: Deepest JSON nesting accepted in a request or a --param value (contract requests are
#: shallow; Python's parser would fail with a RecursionError near 1000 levels).
MAX_JSON_DEPTH = 32

#: Bound on building the report in its child process (a few seconds normally).
REPORT_TIMEOUT_S = 600.0

log = logging.getLogger("serverless_hpc")


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_csv(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None


def _json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return deepest


class _NotFinite(ValueError):
    """JSON's Infinity/NaN: accepted by Python's parser, meaningless as a setting."""


def _reject_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a finite number")


def parse_json(text: str, what: str) -> Any:
    """``text`` as JSON: finite numbers only, at most :data:`MAX_JSON_DEPTH` deep.

    ``ValueError`` naming ``what`` otherwise (a deeply nested request would otherwise end in
    a RecursionError traceback).
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except _NotFinite as exc:
        raise ValueError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _kv(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {value!r}")
    return key, val


def _add_train_options(b: argparse.ArgumentParser) -> None:
    """``shpc bench``'s options for the long-running workloads (``train``)."""
    from serverless_hpc.workloads.train import DEFAULT_EPOCHS as DEFAULT_TRAIN_EPOCHS

    b.add_argument(
        "--train-repeats", type=int, default=1, help="training runs per target (default 1)"
    )
    b.add_argument(
        "--train-workers",
        type=_int_csv,
        default=(1,),
        help="functions a training runs on, data-parallel with model averaging (once an "
        "epoch, or --param train.syncs_per_epoch=S times); each count is a plan point (e.g. "
        "1,2,4; default 1)",
    )
    b.add_argument(
        "--train-on",
        type=_csv,
        metavar="TARGETS",
        help="targets that train, listed first in --targets (default: every target); the "
        "others classify with the model version they wrote (the local targets share one "
        "model store)",
    )
    b.add_argument(
        "--train-epochs",
        type=int,
        help=f"training epochs (default: the train workload's, {DEFAULT_TRAIN_EPOCHS})",
    )
    b.add_argument(
        "--train-limit", type=int, help="train on the first N training images only (for quick runs)"
    )


def _add_target_options(p: argparse.ArgumentParser) -> None:
    from serverless_hpc.targets.base import (
        MAX_CONCURRENCY,
        MAX_KEEP_ALIVE_S,
        MAX_TIMEOUT_S,
    )

    g = p.add_argument_group("targets")
    g.add_argument(
        "--data-dir",
        type=Path,
        help="Fashion-MNIST directory (default: $FASHION_MNIST_DIR, else the cache, "
        "fetched if missing)",
    )
    g.add_argument(
        "--store",
        help="model store: a path or s3://bucket/prefix (default: $SHPC_STORE or the cache)",
    )
    g.add_argument(
        "--memory-mb",
        type=_int_csv,
        help="function memory size(s) in MB; a list such as 512,1024,1769 sweeps every batch "
        "over the sizes on the targets that can set memory (local-faas, lambda, openwhisk) "
        "(default: each target's setting; local-faas 2048, train 4096)",
    )
    g.add_argument(
        "--concurrency",
        type=int,
        help="local-faas concurrency cap / standalone pool size / openwhisk in-flight limit, "
        f"at most {MAX_CONCURRENCY} (default: CPU count, at least 2 for local-faas; "
        "standalone: the emulated VM's vCPUs, at most the CPU count; openwhisk 64)",
    )
    g.add_argument(
        "--keep-alive",
        type=float,
        default=60.0,
        help=f"local-faas idle instance keep-alive in seconds, at most {MAX_KEEP_ALIVE_S:g} "
        "(default 60)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        help="per-invocation timeout in seconds (default: train 900, others 60; at most "
        f"{MAX_TIMEOUT_S:g}, lambda 900)",
    )
    g.add_argument(
        "--target-opt",
        type=_kv,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="target option (repeatable): KEY=VALUE goes to every target of the run that "
        "knows KEY; TARGET.KEY=VALUE to that target only (wins over the plain form)",
    )


def _settings(args: argparse.Namespace, out: Path | None) -> Any:
    """Target settings from the options; the dataset is resolved later by :func:`_with_data`."""
    from serverless_hpc.targets.base import TargetSettings

    return TargetSettings(
        data_dir=args.data_dir,
        store_uri=args.store,
        log_dir=out / "logs" if out else None,
        memory_mb=args.memory_mb[0] if args.memory_mb and len(args.memory_mb) == 1 else None,
        concurrency=args.concurrency,
        keep_alive_s=args.keep_alive,
        timeout_s=args.timeout,
        extra=dict(args.target_opt),
    )


def _with_data(settings: Any, args: argparse.Namespace) -> Any:
    """``settings`` with a verified dataset directory when a local target will read it.

    Called after the options are validated, so a typo never triggers a download first.
    """
    import dataclasses

    if args.data_dir is None and not _needs_local_data(args):
        return settings
    from serverless_hpc.data.fashion_mnist import ensure_data, verify_dir

    data_dir = ensure_data(args.data_dir)
    # Every file's md5 now (~0.1 s), so a corrupt copy fails here, not in each invocation.
    verify_dir(data_dir)
    return dataclasses.replace(settings, data_dir=data_dir)


def _needs_local_data(args: argparse.Namespace) -> bool:
    """Whether a local target will run a workload that reads the dataset."""
    from serverless_hpc import workloads
    from serverless_hpc.targets import LOCAL_TARGETS

    names = getattr(args, "targets", None) or (getattr(args, "target", None),)
    if not any(n in LOCAL_TARGETS for n in names):
        return False
    planned = getattr(args, "workloads", None)
    if planned is None:  # shpc invoke: the request names its workload
        try:
            request = json.loads(args.request)
        except (json.JSONDecodeError, AttributeError):
            return True
        planned = (request.get("workload"),) if isinstance(request, dict) else ()
    specs = workloads.specs()
    # an unknown workload: let the target answer it, after the dataset check as before
    return any(w not in specs or specs[w].splits(specs[w].plan_params) for w in planned)


#: The CLI's shorthands for common workload parameters: option -> (workload, parameter).
SHORTHANDS: dict[str, tuple[str, str]] = {
    "images": ("classify", "end"),
    "train_epochs": ("train", "epochs"),
    "train_limit": ("train", "train_limit"),
    "dataproc_split": ("dataproc", "split"),
}


def _param(text: str) -> tuple[str, str, Any]:
    """Parse ``WORKLOAD.KEY=VALUE`` (VALUE as JSON when it parses, else a string)."""
    head, eq, raw = text.partition("=")
    workload, dot, key = head.partition(".")
    if not eq or not dot or not workload or not key:
        raise argparse.ArgumentTypeError(f"expected WORKLOAD.KEY=VALUE, got {text!r}")
    try:
        value: Any = parse_json(raw, f"--param {head}")
    except ValueError as exc:
        if "not JSON" not in str(exc):  # too deep, or Infinity/NaN: refuse, do not stringify
            raise argparse.ArgumentTypeError(str(exc)) from None
        value = raw
    return workload, key, value


def workload_params(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-workload request parameters from ``--param`` and the shorthands, for planned ones.

    A shorthand applies only when its workload is planned (``--images`` with
    ``--workloads dataproc`` is harmless, as before); ``--param`` must name a planned one.
    """
    out: dict[str, dict[str, Any]] = {}
    for option, (workload, key) in SHORTHANDS.items():
        value = getattr(args, option, None)
        if value is not None and workload in args.workloads:
            out.setdefault(workload, {})[key] = value
    for workload, key, value in args.param or ():
        out.setdefault(workload, {})[key] = value
    return out


def bench_config(args: argparse.Namespace, out: Path, run_id: str = "") -> Any:
    """The experiment ``shpc bench`` options describe, validated (``BenchError`` naming the
    option at fault); the dataset is not looked at yet. The dashboard validates with it too.
    """
    from serverless_hpc import bench

    return bench.BenchConfig(
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
        params=workload_params(args),
        settings=_settings(args, out),
        run_id=run_id,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, then build the report (in a child process: see :func:`_build_report`)."""
    import dataclasses

    from serverless_hpc import bench
    from serverless_hpc.rundir import check_run_id

    run_id = check_run_id(args.run_id) if args.run_id else bench.new_run_id()
    out = (args.out or Path("results") / run_id).resolve()
    bench.check_out_dir(out)  # before anything is created (claimed and checked again below)
    cfg = bench_config(args, out, run_id)
    bench.check_plan_size(cfg, confirmed=args.yes)
    # Held until the report is built: a second run on the same --out is refused meanwhile.
    with bench.claim_out_dir(out, run_id) as lock:
        if lock.stale is not None:
            print(
                f"warning: {out} was claimed by a run that ended without releasing it "
                f"({lock.stale.describe()}): it was killed or crashed",
                file=sys.stderr,
            )
        cfg = dataclasses.replace(cfg, settings=_with_data(cfg.settings, args))
        return _bench_claimed(args, cfg, lock)


def _bench_claimed(args: argparse.Namespace, cfg: Any, lock: Any) -> int:
    """The rest of :func:`cmd_bench`, with the run directory claimed."""
    from serverless_hpc import bench

    out, run_id = cfg.out, cfg.run_id
    bar: Any = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="inv", desc="bench", file=sys.stderr, dynamic_ncols=True)

    def on_total(n: int) -> None:
        if bar is not None:
            bar.total = n
            bar.refresh()

    try:
        result = bench.run(
            cfg,
            progress=bar.update if bar is not None else None,
            on_total=on_total,
            lock=lock,
        )
    finally:
        if bar is not None:
            bar.close()
    print(f"run {run_id}: {result.records} invocations, {result.failed} failed")
    report_error = _build_report(out, getattr(args, "jobs_per_hour", None))
    if report_error is None:
        from serverless_hpc.report.build import terminal_summary

        print(terminal_summary(out))
        print()
        print((out / "summary.md").read_text(encoding="utf-8"))
    if len(cfg.memory_mb) > 1:
        _print_memory_picks(out)
    print(f"records: {out / 'records.jsonl'}")
    if report_error is None:
        print(f"report:  {out / 'report.html'}")
    for skip in result.skipped:
        print(
            f"error: skipped {skip['workload']} on {skip['target']}: {skip['reason']}",
            file=sys.stderr,
        )
    if result.failed:
        print(f"error: {result.failed} invocation(s) failed; see the report", file=sys.stderr)
    if report_error is not None:
        print(
            f"error: the report could not be built ({report_error}); the records are kept. "
            f"Rebuild it with: shpc report {out}",
            file=sys.stderr,
        )
        return EXIT_REPORT_FAILED
    return EXIT_FAILED_INVOCATIONS if result.failed or result.skipped else EXIT_OK


def _print_memory_picks(out: Path) -> None:
    """Time and cost at each memory size and the picks (pure computation, no chart)."""
    from serverless_hpc import picks
    from serverless_hpc.pricing_data import load_prices
    from serverless_hpc.records import read_records

    table = picks.size_table(read_records(out / "records.jsonl"), load_prices())
    text = picks.markdown(table, picks.picks(table))
    if text:
        print("Which memory size:\n" + text)


def _build_report(out: Path, jobs_per_hour: str | None = None) -> str | None:
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


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report of an existing run directory."""
    from serverless_hpc import report
    from serverless_hpc.report.cloud import parse_rate

    rates = parse_rate(args.jobs_per_hour) if args.jobs_per_hour else None
    written = report.build_report(args.run_dir, plots=not args.no_plots, jobs_per_hour=rates)
    for path in written.values():
        print(path)
    print(report.terminal_summary(args.run_dir))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two runs row by row; exit 1 on a significant regression beyond the threshold."""
    from serverless_hpc.report import compare

    result = compare.compare_dirs(args.base, args.new)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(compare.text_report(result))
    if args.html is not None or not args.json:
        from serverless_hpc.report.html import render

        path = args.html or args.new / "compare.html"
        try:
            path.write_text(render("compare.html.j2", c=result), encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        if not args.json:
            print(f"compare: {path}")
    if args.fail_on_regression is not None:
        bad = compare.regressions(result, args.fail_on_regression)
        for row in bad:
            k = row["key"]
            print(
                f"error: {k['target']}/{k['workload']}/{k['shards']}/{k['mode']} is "
                f"{row['change_pct']:+.1f}% slower (95% CI {row['ci_low_pct']:+.1f} to "
                f"{row['ci_high_pct']:+.1f}%), over the --fail-on-regression threshold "
                f"{args.fail_on_regression:g}%",
                file=sys.stderr,
            )
        if bad:
            return EXIT_FAILED_INVOCATIONS
    return EXIT_OK


def _percent(value: str) -> float:
    try:
        pct = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {value!r}") from None
    if not 0 <= pct < 1e6:
        raise argparse.ArgumentTypeError(f"expected a percentage in 0..1e6, got {value!r}")
    return pct


def cmd_invoke(args: argparse.Namespace) -> int:
    """Send one request to one target and print the response."""
    from serverless_hpc import targets, workloads

    try:
        request = parse_json(args.request, "the request")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(request, dict):
        print(
            f"error: the request must be a JSON object such as "
            f'{{"workload": "classify", "params": {{}}}}, got {type(request).__name__}',
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.memory_mb and len(args.memory_mb) > 1:
        print("error: --memory-mb: 'shpc invoke' takes one size", file=sys.stderr)
        return EXIT_USAGE
    settings = _with_data(_settings(args, None), args)
    timeout = args.timeout
    if timeout is None:
        known = workloads.specs().get(str(request.get("workload")))
        timeout = known.timeout_s if known else 60.0
    target = targets.create(args.target, settings)
    targets.check_options(settings.extra, [target])
    with target:
        outcome = target.invoke(request, timeout_s=timeout, force_cold=args.cold)
    from serverless_hpc.redact import scrub_response

    print(
        json.dumps(
            {
                "response": scrub_response(outcome.response),
                "cold": outcome.cold,
                "init_ms": outcome.init_ms,
                "duration_ms": outcome.duration_ms,
                "billed_ms": outcome.billed_ms,
                "max_rss_mb": outcome.max_rss_mb,
                "breakdown": outcome.breakdown,
                "resources": outcome.resources,
            },
            indent=2,
        )
    )
    return EXIT_OK if outcome.ok else EXIT_FAILED_INVOCATIONS


def cmd_data(args: argparse.Namespace) -> int:
    """Fetch or verify the Fashion-MNIST files."""
    from serverless_hpc.data import fashion_mnist as fm

    if args.action == "fetch":
        path = fm.fetch(Path(args.data_dir) if args.data_dir else fm.resolve_data_dir())
        print(path)
        return EXIT_OK
    path = fm.resolve_data_dir(args.data_dir)
    for split in fm.SPLITS:
        images, labels = fm.load_split(split, path, verify=True)
        print(f"{split}: {len(images)} images, {len(labels)} labels, md5 verified ({path})")
    return EXIT_OK


def _jobs_per_hour(value: str) -> str:
    """``--jobs-per-hour``: a rate or a range, checked here, passed on as text."""
    from serverless_hpc.report.cloud import OptionError, parse_rate

    try:
        parse_rate(value)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--jobs-per-hour: ")) from None
    return value


def _add_jobs_per_hour(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs-per-hour",
        type=_jobs_per_hour,
        metavar="RATE",
        help="the arrival rate the verdict (functions or a VM) answers for: a value or a "
        "range, e.g. 10 or 1-1000 (default 1-1000)",
    )


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation, tests and the dashboard).

    ``parser_class`` (its subcommands' parsers are of the same class) lets a caller that
    must not exit, such as the dashboard's form check, raise from ``error`` instead.
    """
    from serverless_hpc import __version__, workloads

    parser = parser_class(
        prog="shpc",
        description="serverless-hpc: run and benchmark workloads on local, serverless "
        "and VM targets",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "bench",
        help="run the benchmark and write records, summary, plots and report",
    )
    b.add_argument(
        "--targets",
        type=_csv,
        default=("local-faas", "standalone"),
        help="comma-separated targets (default: local-faas,standalone)",
    )
    b.add_argument(
        "--workloads",
        type=_csv,
        default=workloads.default_names(),
        help=f"comma-separated workloads (default: {','.join(workloads.default_names())}; "
        f"known: {','.join(workloads.names())})",
    )
    b.add_argument(
        "--param",
        type=_param,
        action="append",
        metavar="WORKLOAD.KEY=VALUE",
        help="a request parameter of a workload's planned invocations (repeatable), "
        "e.g. matmul.n=1024",
    )
    b.add_argument(
        "--images", type=int, help="test images to classify (default 3000; classify.end)"
    )
    b.add_argument(
        "--shards", type=_int_csv, default=(1, 5, 10, 15), help="fan-out levels (default 1,5,10,15)"
    )
    b.add_argument(
        "--repeats",
        type=int,
        default=6,
        help="repeats per fan-out level (default 6: the fewest for a 95%% CI of a median)",
    )
    _add_train_options(b)
    b.add_argument(
        "--modes",
        type=_csv,
        default=("natural", "cold"),
        help="natural and/or cold (forced cold starts) (default both)",
    )
    b.add_argument(
        "--cold-repeats",
        type=int,
        default=2,
        help="repeats per fan-out level in cold mode (default 2)",
    )
    b.add_argument(
        "--dataproc-split",
        choices=("train", "test"),
        help="split dataproc aggregates (default train: 60000 images; dataproc.split)",
    )
    b.add_argument("--out", type=Path, help="run directory (default results/<run-id>)")
    b.add_argument("--run-id", help="run id (default: UTC time + random suffix)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from serverless_hpc.bench import CONFIRM_ABOVE

    b.add_argument(
        "--yes",
        action="store_true",
        help=f"run a plan of more than {CONFIRM_ABOVE:,} invocations (refused without it)",
    )
    _add_target_options(b)
    _add_jobs_per_hour(b)
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("report", help="rebuild summary, plots and report.html from a run directory")
    r.add_argument("run_dir", type=Path)
    r.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the SVG charts (a slightly faster report)",
    )
    _add_jobs_per_hour(r)
    r.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="compare two runs row by row (bootstrap 95%% CI of the change of the median)",
    )
    c.add_argument("base", type=Path, help="the baseline run directory")
    c.add_argument("new", type=Path, help="the run directory to judge against it")
    c.add_argument(
        "--fail-on-regression",
        type=_percent,
        metavar="PCT",
        help="exit 1 when a row is significantly slower by more than PCT percent",
    )
    c.add_argument(
        "--json", action="store_true", help="print the comparison as JSON (stable shape)"
    )
    c.add_argument(
        "--html",
        type=Path,
        help="where to write compare.html (default: NEW/compare.html; with --json only when given)",
    )
    c.set_defaults(func=cmd_compare)

    i = sub.add_parser("invoke", help="send one contract request to one target")
    i.add_argument("target")
    i.add_argument(
        "request", help='JSON request, e.g. \'{"workload": "classify", "params": {"end": 100}}\''
    )
    i.add_argument("--cold", action="store_true", help="force a cold start")
    _add_target_options(i)
    i.set_defaults(func=cmd_invoke)

    d = sub.add_parser("data", help="fetch or verify the Fashion-MNIST files")
    d.add_argument("action", choices=("fetch", "verify"))
    d.add_argument("--data-dir", help="directory (default: $FASHION_MNIST_DIR or the cache)")
    d.set_defaults(func=cmd_data)
    for module_name in PLUGIN_COMMANDS:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def _configure_logging(verbose: int) -> None:
    """Log to stderr through a credential-scrubbing formatter; noisy SDKs kept at INFO."""
    from serverless_hpc.redact import RedactingFormatter

    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def _install_stop_signals() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into :class:`~serverless_hpc.bench.RunStopped` (once).

    A second signal while the first is being handled (targets closing, run.json written) is
    ignored, so the clean-up it started is not cut short; kill -9 still works.
    """
    from serverless_hpc.bench import RunStopped

    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # only the main thread may set handlers (main() called from a thread)

    def stop(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise RunStopped(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, stop)
    return previous


def _error(message: str) -> None:
    from serverless_hpc.redact import scrub

    print(f"error: {scrub(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shpc`` console script.

    Every failure ends in one ``error:`` line (credentials scrubbed) and an exit code from
    the module docstring; a traceback only with ``-v``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    from serverless_hpc.bench import BenchError, RunStopped
    from serverless_hpc.data.fashion_mnist import DatasetError
    from serverless_hpc.rundir import RunDirError
    from serverless_hpc.targets.base import TargetUnavailable

    previous = _install_stop_signals()
    try:
        code: int = args.func(args)
    except (BenchError, TargetUnavailable, DatasetError, RunDirError) as exc:
        log.debug("details", exc_info=True)
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:  # unreadable dataset, unwritable --out, full disk...
        log.debug("details", exc_info=True)
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_USAGE
    except RunStopped as exc:
        print(
            f"stopped by {exc.signal_name}; finished invocations are kept in records.jsonl",
            file=sys.stderr,
        )
        return 128 + int(signal.Signals[exc.signal_name])
    except KeyboardInterrupt:
        print("interrupted; finished invocations are kept in records.jsonl", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with -v
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        _error(
            f"internal error: {type(exc).__name__}: {exc}"
            + ("" if args.verbose else " (run with -v for the traceback)")
        )
        return EXIT_INTERNAL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


if __name__ == "__main__":
    sys.exit(main())
