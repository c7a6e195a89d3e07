"""The command line's shared vocabulary: exit codes, argument types, target options.

Every sub-command parses its arguments with these, so a list, a ``--param`` or a JSON value
means the same everywhere. Imports stay lazy: ``shpc --help`` loads almost nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED_INVOCATIONS = 1
EXIT_USAGE = 2
EXIT_REPORT_FAILED = 3
EXIT_INTERNAL = 4


#: Deepest JSON nesting accepted in a request or a --param value (contract requests are
#: shallow; Python's parser would fail with a RecursionError near 1000 levels).
MAX_JSON_DEPTH = 32


def csv_list(value: str) -> tuple[str, ...]:
    """A comma-separated list of names (at least one)."""
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def int_list(value: str) -> tuple[int, ...]:
    """A comma-separated list of integers (at least one)."""
    try:
        return tuple(int(v) for v in csv_list(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None


def json_depth(value: Any) -> int:
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
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def key_value(value: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair."""
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {value!r}")
    return key, val


def add_target_options(p: argparse.ArgumentParser) -> None:
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
        type=int_list,
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
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="target option (repeatable): KEY=VALUE goes to every target of the run that "
        "knows KEY; TARGET.KEY=VALUE to that target only (wins over the plain form)",
    )


def jobs_per_hour(value: str) -> str:
    """``--jobs-per-hour``: a rate or a range, checked here, passed on as text."""
    from serverless_hpc.report.cloud import OptionError, parse_rate

    try:
        parse_rate(value)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--jobs-per-hour: ")) from None
    return value


def add_jobs_per_hour(p: argparse.ArgumentParser) -> None:
    """``--jobs-per-hour`` of ``shpc bench`` and ``shpc report``: what the verdict answers."""
    p.add_argument(
        "--jobs-per-hour",
        type=jobs_per_hour,
        metavar="RATE",
        help="the arrival rate the verdict (functions or a VM) answers for: a value or a "
        "range, e.g. 10 or 1-1000 (default 1-1000)",
    )


def target_settings(args: argparse.Namespace, out: Path | None) -> Any:
    """Target settings from the options; the dataset is resolved later by :func:`with_data`."""
    from serverless_hpc.rundir import paths
    from serverless_hpc.targets.base import TargetSettings

    return TargetSettings(
        data_dir=args.data_dir,
        store_uri=args.store,
        log_dir=paths(out).logs if out else None,
        memory_mb=args.memory_mb[0] if args.memory_mb and len(args.memory_mb) == 1 else None,
        concurrency=args.concurrency,
        keep_alive_s=args.keep_alive,
        timeout_s=args.timeout,
        extra=dict(args.target_opt),
    )


def with_data(settings: Any, args: argparse.Namespace) -> Any:
    """``settings`` with a verified dataset directory when a local target will read it.

    Called after the options are validated, so a typo never triggers a download first.
    """
    import dataclasses

    if args.data_dir is None and not needs_local_data(args):
        return settings
    from serverless_hpc.data.fashion_mnist import ensure_data, verify_dir

    data_dir = ensure_data(args.data_dir)
    # Every file's md5 now (~0.1 s), so a corrupt copy fails here, not in each invocation.
    verify_dir(data_dir)
    return dataclasses.replace(settings, data_dir=data_dir)


def needs_local_data(args: argparse.Namespace) -> bool:
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


def workload_param(text: str) -> tuple[str, str, Any]:
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


def percent(value: str) -> float:
    """A percentage from 0 to 1e6."""
    try:
        pct = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {value!r}") from None
    if not 0 <= pct < 1e6:
        raise argparse.ArgumentTypeError(f"expected a percentage in 0..1e6, got {value!r}")
    return pct


def print_error(message: str) -> None:
    """One ``error:`` line on stderr, scrubbed of every known secret."""
    import sys

    from serverless_hpc.redact import scrub

    print(f"error: {scrub(message)}", file=sys.stderr)


def check_store_option(uri: str | None, *, reach: bool) -> None:
    """``BenchError`` naming ``--store`` when it (or ``$SHPC_STORE``) cannot be a store;
    with ``reach``, an S3 bucket must also exist and answer (one short request)."""
    import os

    from serverless_hpc.contract import ContractError
    from serverless_hpc.driver import BenchError
    from serverless_hpc.store import check_store, check_store_uri

    option = "--store"
    if uri is None:
        uri, option = os.environ.get("SHPC_STORE"), "$SHPC_STORE"
        if not uri:
            return
    try:
        if reach:
            check_store(uri)
        else:
            check_store_uri(uri)
    except ContractError as exc:
        raise BenchError(f"{option}: {exc}") from None


def check_model_params(params: dict[str, dict[str, Any]]) -> None:
    """``BenchError`` naming ``--param W.model`` for a model name that is not one safe path
    segment (it becomes a store key)."""
    from serverless_hpc.contract import ContractError
    from serverless_hpc.driver import BenchError
    from serverless_hpc.store import check_model_name

    for workload, values in params.items():
        if "model" in values:
            try:
                check_model_name(values["model"])
            except ContractError as exc:
                raise BenchError(f"--param {workload}.model: {exc}") from None
