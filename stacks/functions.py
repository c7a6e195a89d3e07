"""The workload function construct: one container-image Lambda function, built from a spec.

Everything that differs between workloads comes from the workload's spec
(:mod:`serverless_hpc.workloads.spec`), so a new workload package becomes a function with no
edit here:

* the image: ``lambdas/Dockerfile.<spec.image>``: the lean LiteRT image, or the TensorFlow
  image for training, so lean workloads' cold starts do not pay for TensorFlow (functions of
  one image share one image asset);
* memory and timeout: the spec's, or the cdk.json overrides (:class:`FunctionConfig`);
* IAM from the spec's store access: every function reads the dataset prefix; ``read-models``
  also reads ``models/``; ``write-models`` reads and writes ``models/``; ``scratch`` reads
  and writes ``scratch/`` (a coupled job's data between rounds; the driver deletes it) and
  nothing of ``models/``; nobody else writes anywhere, and no function deletes.

Logs go to a log group the construct owns (retention set, destroyed with it), written
through the role's own narrow grant rather than the AWS-managed basic policy. The buckets are
taken by attribute from :class:`~stacks.data.Dataset`; their names reach the code through
environment variables. The statements are written out rather than taken from
``bucket.grant_read``/``grant_read_write``, whose action wildcards (``s3:GetObject*``,
``s3:List*``, ...) are broader than what the workloads do.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from serverless_hpc import aws
from serverless_hpc.workloads.spec import SCRATCH_PREFIX, StoreAccess, WorkloadSpec
from stacks.config import REPO_ROOT, FunctionConfig
from stacks.data import Dataset, objects_finding
from stacks.nag import acknowledge, checkov_skip

#: Docker build context: the repository, reduced to what the images copy (``.dockerignore``
#: semantics: exclude everything, then re-include).
IMAGE_CONTEXT_EXCLUDE: Final = [
    "*",
    "!serverless_hpc",
    "!lambdas",
    "**/__pycache__",
    "**/*.pyc",
]
RETENTION: Final = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
LAMBDA_TMP: Final = "/tmp"  # noqa: S108 - Lambda's only writable directory
#: What each store access adds to the dataset read, for the role's description.
ACCESS_WORDS: Final = {
    StoreAccess.NONE: "",
    StoreAccess.READ_MODELS: ", models read",
    StoreAccess.WRITE_MODELS: ", models read/write",
    StoreAccess.SCRATCH: ", scratch read/write",
}


def store_prefix(spec: WorkloadSpec) -> str | None:
    """The results-bucket prefix ``spec``'s function may touch (None: none)."""
    if spec.store is StoreAccess.NONE:
        return None
    return SCRATCH_PREFIX if spec.store is StoreAccess.SCRATCH else aws.MODELS_PREFIX


def dockerfile(spec: WorkloadSpec) -> str:
    """The Lambda image's Dockerfile for ``spec``, relative to the repository."""
    return f"lambdas/Dockerfile.{spec.image.value}"


class WorkloadFunction(Construct):
    """One workload's function, role and log group; see the module docstring."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: WorkloadSpec,
        sizing: FunctionConfig,
        dataset: Dataset,
        architecture: str,
        ephemeral_storage_mb: int,
        reserved_concurrency: int | None,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        arm = architecture == "arm64"
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=RETENTION[log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"serverless-hpc {spec.name} function: logs, dataset read"
            + ACCESS_WORDS[spec.store],
        )
        self._grant(dataset, log_group)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file=dockerfile(spec),
                exclude=IMAGE_CONTEXT_EXCLUDE,
                ignore_mode=cdk.IgnoreMode.DOCKER,
                platform=ecr_assets.Platform.LINUX_ARM64
                if arm
                else ecr_assets.Platform.LINUX_AMD64,
            ),
            architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
            memory_size=sizing.memory_mb,
            timeout=cdk.Duration.seconds(sizing.timeout_s),
            ephemeral_storage_size=cdk.Size.mebibytes(ephemeral_storage_mb),
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=log_group,
            description=f"serverless-hpc '{spec.name}' workload",
            environment={
                "SHPC_WORKLOAD": spec.name,
                "SHPC_DATASET_URI": dataset.dataset_uri,
                "SHPC_STORE": dataset.store_uri,
                "FASHION_MNIST_DIR": f"{LAMBDA_TMP}/fashion-mnist",
                "SHPC_S3_CACHE": f"{LAMBDA_TMP}/shpc-s3-cache",
                "SHPC_MEMORY_MB": str(sizing.memory_mb),
                "HOME": LAMBDA_TMP,  # Keras writes ~/.keras
            },
        )
        self._acknowledge(dataset, log_group, reserved=reserved_concurrency is not None)

    def _grant(self, dataset: Dataset, log_group: logs.LogGroup) -> None:
        """Exactly the actions the workload needs, on exactly its prefixes."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[dataset.dataset_bucket.arn_for_objects(f"{aws.DATASET_PREFIX}/*")],
            )
        )
        # ListBucket makes a missing key a 404 (NotFound) rather than a 403.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[dataset.dataset_bucket.bucket_arn]
            )
        )
        prefix = store_prefix(self.spec)
        if prefix is None:
            return
        actions = ["s3:GetObject"]
        if self.spec.store in (StoreAccess.WRITE_MODELS, StoreAccess.SCRATCH):
            actions.append("s3:PutObject")
        objects = dataset.results_bucket.arn_for_objects(f"{prefix}/*")
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[objects]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[dataset.results_bucket.bucket_arn]
            )
        )

    def _acknowledge(self, dataset: Dataset, log_group: logs.LogGroup, *, reserved: bool) -> None:
        """cdk-nag and checkov findings this function accepts, each with its reason."""
        findings = [objects_finding(dataset.dataset_bucket, aws.DATASET_PREFIX)]
        prefix = store_prefix(self.spec)
        if prefix is not None:
            findings.append(objects_finding(dataset.results_bucket, prefix))
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "Object access is limited to one key prefix (the dataset, the model bundles or "
            "the scratch objects) "
            "whose keys are created at run time, so the prefix wildcard is the narrowest "
            "resource.",
            findings=findings,
        )
        checkov_skip(
            self.function,
            CKV_AWS_116="A dead-letter queue only serves asynchronous invocations; the driver "
            "invokes synchronously (RequestResponse) and records every failure itself.",
            CKV_AWS_117="The function talks only to S3 and CloudWatch Logs; inside a VPC it "
            "would need a NAT gateway or endpoints, costing more per hour than the benchmark.",
            CKV_AWS_173="The environment holds bucket URIs, paths and the workload name, no "
            "secrets; Lambda already encrypts it at rest with an AWS-managed key.",
        )
        if not reserved:
            checkov_skip(
                self.function,
                CKV_AWS_115="Reserved concurrency is a setting (reserved_concurrency in "
                "cdk.json), off by default: a reservation takes capacity from the account's "
                "unreserved pool, and the fan-outs need to scale freely to be measured.",
            )
        checkov_skip(
            log_group,
            CKV_AWS_158="Function logs hold timings and error messages, no secrets or data; "
            "CloudWatch Logs encrypts them at rest, and a customer key would outlive the "
            "stack's teardown and cost per month.",
        )
