"""AWS names shared by the CDK app and the driver: stack, outputs, prefixes, the project tag.

Everything here names things *logically* (the stack name derived from a prefix, output keys,
the project tag); physical resource names are chosen by CloudFormation and published as
stack outputs, which the driver reads (:mod:`serverless_hpc.aws.outputs`). The CDK app
imports these constants too, so the stack and the driver cannot drift apart. Which workloads
have a function is not listed here: every workload spec has one
(:func:`serverless_hpc.workloads.names`).

The package holds two sides that never import each other:

* the *control plane*, run by the driver and the CLI on the user's machine:
  :mod:`~serverless_hpc.aws.outputs` (stack outputs), :mod:`~serverless_hpc.aws.status`
  (what is still alive) and :mod:`~serverless_hpc.aws.cli` (``shpc status``);
* the *function side*, :mod:`serverless_hpc.aws.function`, which runs where the workloads
  run (inside a Lambda function, and the comparison instance's runner).

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


def construct_name(workload: str) -> str:
    """``workload`` as a CloudFormation-safe CamelCase word (``my_job`` -> ``MyJob``).

    Workload names are Python package names; logical ids and output keys take only letters
    and digits, so the underscores go and each part is capitalised.
    """
    word = "".join(part[:1].upper() + part[1:] for part in workload.split("_"))
    if not word.isalnum():
        raise ValueError(f"workload name {workload!r} cannot name a CloudFormation resource")
    return word


def function_output_key(workload: str) -> str:
    """Output key holding the function name of ``workload`` (``ClassifyFunctionName``)."""
    return f"{construct_name(workload)}FunctionName"


def stack_name(prefix: str = DEFAULT_STACK_PREFIX) -> str:
    """The one stack of a deployment (``ShpcBenchmark``); see ``stacks/benchmark.py``."""
    return f"{prefix}Benchmark"
