#!/usr/bin/env python3
"""The CDK app: read the typed config once, instantiate the deployment's stack, tag everything.

Run by the CDK CLI (``cdk.json``: ``python3 app.py``; the Makefile puts the project's venv
first on ``PATH``). Account and region come only from ``CDK_DEFAULT_ACCOUNT`` /
``CDK_DEFAULT_REGION``, which the CLI sets from the AWS profile; without them the stacks are
environment-agnostic, which is all ``cdk synth`` needs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run from anywhere (the CDK CLI, tests): the repository holds ``stacks`` and ``serverless_hpc``.
sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks
except ImportError as exc:  # run by a python without the cdk extra (e.g. outside the venv)
    sys.exit(
        f"error: {exc}. Run 'make synth' (it uses .venv), or install the CDK extra: "
        "pip install -e '.[cdk,aws]'"
    )

from serverless_hpc import aws
from stacks.benchmark import BenchmarkStack
from stacks.config import AppConfig
from stacks.tagging import TagRawResources


def build(app: cdk.App) -> BenchmarkStack:
    """Add the deployment's stack to ``app`` and return it."""
    config = AppConfig.from_context(
        app.node.try_get_context, keys=app.node.get_all_context().keys()
    )
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    stack = BenchmarkStack(
        app,
        aws.stack_name(config.stack_prefix),
        config=config,
        env=env,
        description="serverless-hpc: dataset and results buckets, one Lambda function per "
        "workload, the comparison EC2 instance",
    )
    cdk.Tags.of(app).add(config.tag_key, config.tag_value)
    cdk.Aspects.of(app).add(TagRawResources(config.tag_key, config.tag_value))
    if config.nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def main() -> None:
    """Synthesize the app (what ``cdk synth`` runs)."""
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
