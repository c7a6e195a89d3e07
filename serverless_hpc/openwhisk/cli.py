"""``shpc ow {apply,destroy,status}``: the OpenWhisk companion commands.

Plugged into ``shpc`` through ``add_parser(subparsers)`` (``serverless_hpc.cli``'s
``PLUGIN_COMMANDS``). Only the standard library is imported here at module level; the REST
client (and ``requests``) load when a command runs, so ``shpc --help`` stays light.

Exit codes follow ``shpc``: 0 done; 1 the controller refused or failed (HTTP error, platform
error); 2 bad usage, missing credentials, or a limit check that stopped apply before
anything was sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _error(message: str) -> None:
    """One ``error:`` line, scrubbed of every known secret (a controller may echo one)."""
    from serverless_hpc.redact import scrub

    print(f"error: {scrub(message)}", file=sys.stderr)


def _kv_int(value: str) -> tuple[str, int]:
    key, sep, raw = value.partition("=")
    try:
        number = int(raw)
    except ValueError:
        number = -1
    if not sep or not key or number <= 0:
        raise argparse.ArgumentTypeError(f"expected WORKLOAD=POSITIVE_INTEGER, got {value!r}")
    return key, number


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--project", default="serverless-hpc", help="project name (managed-by annotation)"
    )
    p.add_argument("--package", help="package name (default: the project name)")
    p.add_argument(
        "--config-file",
        type=Path,
        help="wsk properties file (default: $WSK_CONFIG_FILE or ~/.wskprops)",
    )
    p.add_argument("--apihost", help="override APIHOST (a host without scheme means https)")
    p.add_argument(
        "-i",
        "--insecure",
        action="store_true",
        default=None,
        help="skip TLS certificate verification (self-signed controllers), like wsk -i",
    )


def add_parser(subparsers: Any) -> None:
    """Register ``ow`` and its sub-commands on ``shpc``'s sub-parsers."""
    ow = subparsers.add_parser(
        "ow", help="OpenWhisk: apply, destroy or inspect the workloads as actions"
    )
    sub = ow.add_subparsers(dest="ow_command", required=True)
    a = sub.add_parser("apply", help="create or update the package and its actions")
    _common(a)
    a.add_argument(
        "--workloads",
        type=_csv,
        default=(),
        help="workloads to apply as actions (default: every workload of the package)",
    )
    a.add_argument("--image-lean", help="LiteRT runtime image (default: $SHPC_OW_IMAGE_LEAN)")
    a.add_argument("--image-train", help="TensorFlow runtime image (default: $SHPC_OW_IMAGE_TRAIN)")
    a.add_argument(
        "--memory",
        type=_kv_int,
        action="append",
        default=[],
        metavar="WORKLOAD=MB",
        help="action memory (default: the workload spec's, capped at the namespace maximum "
        "but never below the least the workload runs in)",
    )
    a.add_argument(
        "--timeout",
        type=_kv_int,
        action="append",
        default=[],
        metavar="WORKLOAD=SECONDS",
        help="action time limit (default: the workload spec's)",
    )
    a.add_argument("--store", help="model store URI bound to the actions (shpc_store)")
    a.add_argument("--data-dir", help="dataset directory inside the image (shpc_data_dir)")
    a.add_argument("--action-file", type=Path, help="adapter source (default: openwhisk/action.py)")
    a.set_defaults(func=cmd_apply)
    d = sub.add_parser("destroy", help="delete this project's actions, then its package")
    _common(d)
    d.set_defaults(func=cmd_destroy)
    s = sub.add_parser("status", help="show the package and actions that exist")
    _common(s)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_status)


def _client(args: argparse.Namespace) -> Any:
    from serverless_hpc.openwhisk.client import OpenWhiskClient
    from serverless_hpc.openwhisk.config import load_credentials

    creds = load_credentials(
        config_file=args.config_file, apihost=args.apihost, insecure=args.insecure
    )
    log.info("OpenWhisk endpoint %s (namespace %s)", creds.apihost, creds.namespace)
    return OpenWhiskClient(creds)


def _run(args: argparse.Namespace, action: Any) -> int:
    """Run ``action(client)`` and map the module's exceptions to exit codes and messages."""
    from serverless_hpc.openwhisk.client import OpenWhiskError
    from serverless_hpc.openwhisk.config import CredentialsError
    from serverless_hpc.openwhisk.deploy import DeployError

    try:
        client = _client(args)
    except CredentialsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    try:
        code: int = action(client)
    except DeployError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OpenWhiskError as exc:
        _error(str(exc))
        return EXIT_FAILED
    finally:
        client.close()
    return code


def cmd_apply(args: argparse.Namespace) -> int:
    """``shpc ow apply``."""
    from serverless_hpc.openwhisk import deploy

    try:
        images = {k: v for k, v in (("lean", args.image_lean), ("train", args.image_train)) if v}
        cfg = deploy.ProjectConfig(
            project=args.project,
            package=args.package,
            workloads=args.workloads,
            images=images,
            memory_mb=dict(args.memory),
            timeout_ms={k: v * 1000 for k, v in args.timeout},
            action_file=args.action_file or deploy.DEFAULT_ACTION_FILE,
            store_uri=args.store,
            data_dir=args.data_dir,
        )
    except deploy.DeployError as exc:
        _error(str(exc))
        return EXIT_USAGE

    def go(client: Any) -> int:
        report = deploy.apply(client, cfg)
        for name in report.applied:
            print(f"applied {name}")
        return EXIT_OK

    return _run(args, go)


def cmd_destroy(args: argparse.Namespace) -> int:
    """``shpc ow destroy``."""
    from serverless_hpc.openwhisk import deploy

    def go(client: Any) -> int:
        report = deploy.destroy(client, project=args.project, package=args.package)
        for name in report.deleted:
            print(f"deleted {name}")
        for name in report.kept:
            print(f"kept {name} (not managed by {args.project})")
        if not report.deleted and not report.kept:
            print(f"nothing to destroy: package {report.package} does not exist")
        return EXIT_OK

    return _run(args, go)


def cmd_status(args: argparse.Namespace) -> int:
    """``shpc ow status``."""
    from serverless_hpc.openwhisk import deploy

    def go(client: Any) -> int:
        state = deploy.status(client, project=args.project, package=args.package)
        if args.json:
            print(json.dumps(state, indent=2))
            return EXIT_OK
        if not state["exists"]:
            print(f"package {state['package']}: absent")
            return EXIT_OK
        owner = "managed" if state["managed"] else "NOT managed by this project"
        print(f"package {state['package']}: present ({owner})")
        for a in state["actions"]:
            flag = "" if a["managed"] else "  (not managed)"
            print(
                f"  {a['name']}: version {a['version']}, {a['memory_mb']} MB, "
                f"{a['timeout_ms']} ms, image {a['image']}{flag}"
            )
        return EXIT_OK

    return _run(args, go)
