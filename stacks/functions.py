"""Functions stack: one container-image Lambda function per workload.

``train`` runs on the TensorFlow image (``lambdas/Dockerfile.train``) with more memory and
up to Lambda's 15-minute ceiling; ``classify`` and ``dataproc`` share the lean LiteRT image
(``lambdas/Dockerfile.infer``), so their cold starts do not pay for TensorFlow.

Each function has its own role with exactly what its workload touches: read the dataset
prefix; ``train`` reads and writes ``models/``; ``classify`` reads ``models/``; nobody else
writes anywhere. Logs go to a log group the stack owns (retention set, destroyed with it),
written through the role's own narrow grant rather than the AWS-managed basic policy. Bucket
names reach the code through environment variables; function names leave through outputs.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from serverless_hpc import aws
from stacks.config import REPO_ROOT, AppConfig
from stacks.data import BucketRef
from stacks.nag import acknowledge

#: Docker build context: the repository, reduced to what the images copy (``.dockerignore``
#: semantics: exclude everything, then re-include).
IMAGE_CONTEXT_EXCLUDE: Final = [
    "*",
    "!serverless_hpc",
    "!lambdas",
    "**/__pycache__",
    "**/*.pyc",
]
DOCKERFILES: Final = {
    "train": "lambdas/Dockerfile.train",
    "classify": "lambdas/Dockerfile.infer",
    "dataproc": "lambdas/Dockerfile.infer",
}
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


class FunctionsStack(cdk.Stack):
    """The three functions; see the module docstring."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        dataset: BucketRef,
        results: BucketRef,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        dataset_bucket = dataset.import_into(self, "DatasetBucket")
        results_bucket = results.import_into(self, "ResultsBucket")
        arm = config.architecture == "arm64"
        architecture = lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64
        platform = ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64
        self.functions: dict[str, lambda_.DockerImageFunction] = {}
        for workload in aws.WORKLOADS:
            fn_cfg = config.functions[workload]
            log_group = logs.LogGroup(
                self,
                f"{workload.capitalize()}Logs",
                retention=RETENTION[config.log_retention_days],
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            role = iam.Role(
                self,
                f"{workload.capitalize()}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"serverless-hpc {workload} function: logs, dataset read"
                + (", models read/write" if workload == "train" else "")
                + (", models read" if workload == "classify" else ""),
            )
            self._grant(role, workload, dataset_bucket, results_bucket, log_group)
            self._acknowledge(role, workload, dataset, results)
            fn = lambda_.DockerImageFunction(
                self,
                f"{workload.capitalize()}Function",
                code=lambda_.DockerImageCode.from_image_asset(
                    str(REPO_ROOT),
                    file=DOCKERFILES[workload],
                    exclude=IMAGE_CONTEXT_EXCLUDE,
                    ignore_mode=cdk.IgnoreMode.DOCKER,
                    platform=platform,
                ),
                architecture=architecture,
                memory_size=fn_cfg.memory_mb,
                timeout=cdk.Duration.seconds(fn_cfg.timeout_s),
                ephemeral_storage_size=cdk.Size.mebibytes(config.ephemeral_storage_mb),
                reserved_concurrent_executions=config.reserved_concurrency,
                role=role,
                log_group=log_group,
                description=f"serverless-hpc '{workload}' workload",
                environment={
                    "SHPC_WORKLOAD": workload,
                    "SHPC_DATASET_URI": f"s3://{dataset_bucket.bucket_name}/{aws.DATASET_PREFIX}",
                    "SHPC_STORE": f"s3://{results_bucket.bucket_name}",
                    "FASHION_MNIST_DIR": f"{LAMBDA_TMP}/fashion-mnist",
                    "SHPC_S3_CACHE": f"{LAMBDA_TMP}/shpc-s3-cache",
                    "SHPC_MEMORY_MB": str(fn_cfg.memory_mb),
                    "HOME": LAMBDA_TMP,  # Keras writes ~/.keras
                },
            )
            self.functions[workload] = fn
            cdk.CfnOutput(self, aws.function_output_key(workload), value=fn.function_name)
        cdk.CfnOutput(self, aws.OUT_ARCHITECTURE, value=config.architecture)

    def _grant(
        self,
        role: iam.Role,
        workload: str,
        dataset: s3.IBucket,
        results: s3.IBucket,
        log_group: logs.LogGroup,
    ) -> None:
        """Exactly the actions ``workload`` needs, on exactly its prefixes."""
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[dataset.arn_for_objects(f"{aws.DATASET_PREFIX}/*")],
            )
        )
        # ListBucket makes a missing key a 404 (NotFound) rather than a 403.
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[dataset.bucket_arn])
        )
        if workload in ("train", "classify"):
            models = results.arn_for_objects(f"{aws.MODELS_PREFIX}/*")
            actions = ["s3:GetObject", "s3:PutObject"] if workload == "train" else ["s3:GetObject"]
            role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[models]))
            role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[results.bucket_arn])
            )

    @staticmethod
    def _acknowledge(role: iam.Role, workload: str, dataset: BucketRef, results: BucketRef) -> None:
        findings = [dataset.objects_finding(aws.DATASET_PREFIX)]
        if workload in ("train", "classify"):
            findings.append(results.objects_finding(aws.MODELS_PREFIX))
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Object access is limited to one key prefix (the dataset, or the model bundles) "
            "whose keys are created at run time, so the prefix wildcard is the narrowest "
            "resource.",
            findings=findings,
        )
