#!/usr/bin/env python3
"""The CDK app: read the typed config once, instantiate the three stacks, tag everything.

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
from stacks.comparison import ComparisonStack
from stacks.config import AppConfig
from stacks.data import DataStack
from stacks.functions import FunctionsStack
from stacks.tagging import TagRawResources


def build(app: cdk.App) -> dict[str, cdk.Stack]:
    """Add the stacks to ``app`` and return them by role (data, functions, comparison)."""
    config = AppConfig.from_context(app.node.try_get_context)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    names = aws.stack_names(config.stack_prefix)
    data = DataStack(
        app,
        names["data"],
        config=config,
        env=env,
        description="serverless-hpc: dataset and results buckets",
    )
    functions = FunctionsStack(
        app,
        names["functions"],
        config=config,
        dataset=data.dataset_ref,
        results=data.results_ref,
        env=env,
        description="serverless-hpc: Lambda container-image functions",
    )
    comparison = ComparisonStack(
        app,
        names["comparison"],
        config=config,
        dataset=data.dataset_ref,
        results=data.results_ref,
        env=env,
        description="serverless-hpc: comparison EC2 instance",
    )
    functions.add_stack_dependency(data, "imports the buckets' exports")
    comparison.add_stack_dependency(data, "imports the buckets' exports")
    cdk.Tags.of(app).add(config.tag_key, config.tag_value)
    cdk.Aspects.of(app).add(TagRawResources(config.tag_key, config.tag_value))
    if config.nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return {"data": data, "functions": functions, "comparison": comparison}


def main() -> None:
    """Synthesize the app (what ``cdk synth`` runs)."""
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
