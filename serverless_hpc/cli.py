"""``shpc``: the command line. Imports stay lazy so ``shpc --help`` loads almost nothing.

``shpc bench`` is :mod:`serverless_hpc.cli_bench`; the argument types and exit codes shared
by every sub-command are :mod:`serverless_hpc.cli_args`.

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

from serverless_hpc.cli_args import (
    EXIT_FAILED_INVOCATIONS,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    add_jobs_per_hour,
    add_target_options,
    check_store_option,
    parse_json,
    percent,
    target_settings,
    with_data,
)
from serverless_hpc.cli_bench import add_bench_parser

#: Modules contributing sub-commands through ``add_parser(subparsers)``; each imports only
#: the standard library at module level so ``shpc --help`` stays light.
PLUGIN_COMMANDS: tuple[str, ...] = (
    "serverless_hpc.aws.cli",
    "serverless_hpc.openwhisk.cli",
    "serverless_hpc.serve.cli",
    "serverless_hpc.project",
)


#: Signals handled as Ctrl-C is: the run stops, its instances are killed, run.json says
#: "aborted" and every record is kept.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)
#: Loggers that print credentials at DEBUG (botocore logs signed request headers): kept at
#: INFO even under -vv.
NOISY_LOGGERS: tuple[str, ...] = ("botocore", "boto3", "s3transfer", "urllib3")

log = logging.getLogger("serverless_hpc")


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
    from serverless_hpc.rundir import paths

    result = compare.compare_dirs(args.base, args.new)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(compare.text_report(result))
    if args.html is not None or not args.json:
        from serverless_hpc.report.html import render

        path = args.html or paths(args.new).compare
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
            f'{{"workload": "NAME", "params": {{}}}}, got {type(request).__name__}',
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.memory_mb and len(args.memory_mb) > 1:
        print("error: --memory-mb: 'shpc invoke' takes one size", file=sys.stderr)
        return EXIT_USAGE
    check_store_option(args.store, reach=True)
    settings = with_data(target_settings(args, None), args)
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
    add_bench_parser(sub)

    r = sub.add_parser("report", help="rebuild summary, plots and report.html from a run directory")
    r.add_argument("run_dir", type=Path)
    r.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the SVG charts (a slightly faster report)",
    )
    add_jobs_per_hour(r)
    r.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="compare two runs row by row (bootstrap 95%% CI of the change of the median)",
    )
    c.add_argument("base", type=Path, help="the baseline run directory")
    c.add_argument("new", type=Path, help="the run directory to judge against it")
    c.add_argument(
        "--fail-on-regression",
        type=percent,
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
        "request",
        help='JSON request, e.g. \'{"workload": "NAME", "params": {...}}\' (workloads: '
        + ", ".join(workloads.names())
        + ")",
    )
    i.add_argument("--cold", action="store_true", help="force a cold start")
    add_target_options(i)
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
    """Turn SIGTERM and SIGHUP into :class:`~serverless_hpc.driver.RunStopped` (once).

    A second signal while the first is being handled (targets closing, run.json written) is
    ignored, so the clean-up it started is not cut short; kill -9 still works.
    """
    from serverless_hpc.driver import RunStopped

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
    from serverless_hpc.data.fashion_mnist import DatasetError
    from serverless_hpc.driver import BenchError, RunStopped
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
            from serverless_hpc.redact import scrub

            print(scrub(traceback.format_exc()), end="", file=sys.stderr)
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
