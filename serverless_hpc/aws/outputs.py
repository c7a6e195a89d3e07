"""Resource names from the deployment's CloudFormation outputs, looked up once by the driver.

Control plane: runs on the user's machine, never inside a function. The functions it expects
are one per workload spec, so a workload added to the package is looked up with no edit here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from serverless_hpc import aws, workloads

log = logging.getLogger(__name__)


class OutputsUnavailable(Exception):
    """A stack or one of its outputs does not exist (not deployed, or another prefix)."""


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    """All outputs of ``stack_name`` as ``{OutputKey: OutputValue}``."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ValidationError":  # CloudFormation's answer for "stack does not exist"
            raise OutputsUnavailable(
                f"stack {stack_name!r} is not deployed (run 'make deploy')"
            ) from exc
        raise
    if not stacks:
        raise OutputsUnavailable(f"stack {stack_name!r} is not deployed (run 'make deploy')")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _require(outputs: dict[str, str], key: str, stack: str) -> str:
    try:
        return outputs[key]
    except KeyError:
        raise OutputsUnavailable(
            f"stack {stack!r} has no output {key!r}; redeploy with this version of the app"
        ) from None


@dataclass(frozen=True, slots=True)
class DataOutputs:
    """The deployment's buckets."""

    dataset_bucket: str
    results_bucket: str

    @property
    def dataset_uri(self) -> str:
        """Where the dataset files are: ``s3://<dataset>/fashion-mnist``."""
        return f"s3://{self.dataset_bucket}/{aws.DATASET_PREFIX}"

    @property
    def store_uri(self) -> str:
        """The model store (bundles under ``models/``) in the results bucket."""
        return f"s3://{self.results_bucket}"


@dataclass(frozen=True, slots=True)
class FunctionOutputs:
    """The deployment's function names (one per workload) and their architecture."""

    functions: dict[str, str]
    architecture: str


@dataclass(frozen=True, slots=True)
class ComparisonOutputs:
    """The deployment's comparison instance."""

    instance_id: str
    instance_type: str
    root_volume_gb: float
    runner_command: str


def data_outputs(cfn: Any, prefix: str) -> DataOutputs:
    """Look up the buckets."""
    name = aws.stack_name(prefix)
    out = stack_outputs(cfn, name)
    return DataOutputs(
        dataset_bucket=_require(out, aws.OUT_DATASET_BUCKET, name),
        results_bucket=_require(out, aws.OUT_RESULTS_BUCKET, name),
    )


def function_outputs(cfn: Any, prefix: str) -> FunctionOutputs:
    """Look up every workload's function (``OutputsUnavailable`` naming a missing one)."""
    name = aws.stack_name(prefix)
    out = stack_outputs(cfn, name)
    functions = {w: _require(out, aws.function_output_key(w), name) for w in workloads.names()}
    return FunctionOutputs(
        functions=functions, architecture=_require(out, aws.OUT_ARCHITECTURE, name)
    )


def comparison_outputs(cfn: Any, prefix: str) -> ComparisonOutputs:
    """Look up the comparison instance."""
    name = aws.stack_name(prefix)
    out = stack_outputs(cfn, name)
    return ComparisonOutputs(
        instance_id=_require(out, aws.OUT_INSTANCE_ID, name),
        instance_type=_require(out, aws.OUT_INSTANCE_TYPE, name),
        root_volume_gb=float(_require(out, aws.OUT_ROOT_VOLUME_GB, name)),
        runner_command=_require(out, aws.OUT_RUNNER_COMMAND, name),
    )
