"""AWS support shared by the CDK app, the targets and the CLI: names, outputs, status.

Everything here names things *logically* (stack names derived from a prefix, output keys,
the project tag); physical resource names are chosen by CloudFormation and published as
stack outputs, which the driver reads (:mod:`serverless_hpc.aws.outputs`). The CDK app
imports these constants too, so the stacks and the driver cannot drift apart.

Only the standard library is imported at module level: boto3 is loaded inside functions.
"""

from __future__ import annotations

from typing import Final

#: The tag every resource of the project carries (``shpc status`` lists what still has it).
PROJECT_TAG_KEY: Final = "project"
PROJECT_TAG_VALUE: Final = "serverless-hpc"
#: Default stack-name prefix; cdk.json context ``stack_prefix`` and the targets'
#: ``--target-opt stack_prefix=...`` override it (keep them equal).
DEFAULT_STACK_PREFIX: Final = "Shpc"
WORKLOADS: Final = ("train", "classify", "dataproc")

#: Key prefix of the dataset files in the dataset bucket, and the prefixes of the
#: models/results bucket that functions and the instance may write under.
DATASET_PREFIX: Final = "fashion-mnist"
MODELS_PREFIX: Final = "models"
RESULTS_PREFIX: Final = "results"

# CfnOutput keys (logical ids) the driver reads.
OUT_DATASET_BUCKET: Final = "DatasetBucketName"
OUT_RESULTS_BUCKET: Final = "ResultsBucketName"
OUT_ARCHITECTURE: Final = "FunctionArchitecture"
OUT_INSTANCE_ID: Final = "InstanceId"
OUT_INSTANCE_TYPE: Final = "InstanceType"
OUT_ROOT_VOLUME_GB: Final = "RootVolumeGb"
OUT_RUNNER_COMMAND: Final = "RunnerCommand"


def function_output_key(workload: str) -> str:
    """Output key holding the function name of ``workload`` (``ClassifyFunctionName``)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}")
    return f"{workload.capitalize()}FunctionName"


def stack_names(prefix: str = DEFAULT_STACK_PREFIX) -> dict[str, str]:
    """The three stack names for ``prefix``: data, functions, comparison."""
    return {
        "data": f"{prefix}Data",
        "functions": f"{prefix}Functions",
        "comparison": f"{prefix}Comparison",
    }
