"""``shpc status``: list every resource tagged with the project tag that is still alive.

Plugged into the ``shpc`` parser through ``add_parser(subparsers)`` (see
``serverless_hpc.cli.PLUGIN_COMMANDS``). Only the standard library is imported at module
level so ``shpc --help`` stays light; boto3 is loaded when the command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ALIVE = 1
EXIT_UNAVAILABLE = 2


def cmd_status(args: argparse.Namespace) -> int:
    """Print the tagged resources; exit 1 when ``--expect-empty`` and some are alive."""
    from serverless_hpc.aws.status import tagged_resources

    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        print(f"error: 'shpc status' needs the aws extra ({exc})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        from serverless_hpc.redact import scrub
        from serverless_hpc.targets.aws_session import register_session

        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        register_session(session)
        client = session.client("resourcegroupstaggingapi")
        found = tagged_resources(client, key=args.tag_key, value=args.tag_value)
    except (BotoCoreError, ClientError) as exc:
        print(f"error: cannot list tagged resources: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    region = session.region_name
    if args.json:
        rows: list[dict[str, Any]] = [
            {"arn": r.arn, "service": r.service, "type": r.resource_type} for r in found
        ]
        print(json.dumps({"region": region, "resources": rows}, indent=2))
    elif not found:
        print(f"nothing tagged {args.tag_key}={args.tag_value} is alive in {region}")
    else:
        print(f"{len(found)} resource(s) tagged {args.tag_key}={args.tag_value} in {region}:")
        for r in found:
            print(f"  {r.service:<16} {r.resource_type:<24} {r.arn}")
    return EXIT_ALIVE if (found and args.expect_empty) else EXIT_OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``status`` on the ``shpc`` sub-command parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "status", help="list AWS resources tagged with the project tag that are still alive"
    )
    p.add_argument("--region", help="AWS region (default: the profile's / $AWS_REGION)")
    p.add_argument("--profile", help="AWS profile (default: $AWS_PROFILE / default chain)")
    # Literals equal to serverless_hpc.aws.PROJECT_TAG_* (a test checks they agree), so this
    # module imports only the standard library.
    p.add_argument("--tag-key", default="project", help="tag key (default: project)")
    p.add_argument(
        "--tag-value", default="serverless-hpc", help="tag value (default: serverless-hpc)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--expect-empty",
        action="store_true",
        help="exit 1 when anything tagged is alive (for checking a teardown)",
    )
    p.set_defaults(func=cmd_status)
    return p
