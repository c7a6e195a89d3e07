"""Data stack: the dataset bucket (staged at deploy) and the models/results bucket.

Both buckets block public access, are encrypted (SSE-S3), refuse non-TLS requests and are
destroyed with the stack, objects included (``autoDeleteObjects``), so ``make destroy`` and
``make recreate`` leave nothing. ``retain_results=true`` in the context keeps the
models/results bucket and its contents instead.

The four canonical Fashion-MNIST files are checked against their published md5 sums at synth
time and shipped as a CDK asset that a ``BucketDeployment`` copies into the dataset bucket
during ``cdk deploy``: the deploy cannot stage a wrong or truncated file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from serverless_hpc import aws
from serverless_hpc.data import fashion_mnist as fm
from stacks.config import AppConfig, ConfigError
from stacks.nag import acknowledge


def verified_dataset_files(directory: Path) -> list[str]:
    """Names of the four canonical files in ``directory``, each md5-verified.

    Raises :class:`ConfigError` naming the missing or corrupt file, so a synth never ships a
    dataset the workloads would reject.
    """
    if not directory.is_dir():
        raise ConfigError(
            f"dataset_dir {directory} does not exist: run 'shpc data fetch' or pass "
            "-c dataset_dir=/path/to/fashion-mnist"
        )
    names = []
    for split in fm.SPLITS:
        for spec in fm.FILES[split]:
            path = directory / spec.name
            if not path.is_file():
                raise ConfigError(f"dataset_dir {directory} lacks {spec.name}")
            actual = fm.md5sum(path)
            if actual != spec.md5:
                raise ConfigError(f"{path}: md5 {actual} is not the published {spec.md5}")
            names.append(spec.name)
    return names


@dataclass(frozen=True, slots=True)
class BucketRef:
    """A bucket shared with other stacks through explicitly named CloudFormation exports.

    Named exports (rather than CDK's automatic cross-stack references) keep the consuming
    templates readable and let cdk-nag findings name the import deterministically.
    """

    arn_export: str
    name_export: str

    def import_into(self, scope: Construct, construct_id: str) -> s3.IBucket:
        """The bucket as seen from another stack (``Fn::ImportValue`` of both exports)."""
        return s3.Bucket.from_bucket_attributes(
            scope,
            construct_id,
            bucket_arn=cdk.Fn.import_value(self.arn_export),
            bucket_name=cdk.Fn.import_value(self.name_export),
        )

    def objects_finding(self, prefix: str) -> str:
        """cdk-nag's IAM5 finding id for ``<imported bucket arn>/<prefix>/*``."""
        return f"Resource::{self.arn_export}/{prefix}/*"


class DataStack(cdk.Stack):
    """The two buckets and the dataset staging; see the module docstring."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        files = verified_dataset_files(config.dataset_dir)

        self.dataset_bucket = self._bucket("DatasetBucket", retain=False)
        self.results_bucket = self._bucket("ResultsBucket", retain=config.retain_results)

        deployment = s3deploy.BucketDeployment(
            self,
            "StageDataset",
            sources=[
                s3deploy.Source.asset(
                    str(config.dataset_dir),
                    # Only the canonical files: not a MANIFEST, README or partial download.
                    exclude=["*", *(f"!{name}" for name in files)],
                )
            ],
            destination_bucket=self.dataset_bucket,
            destination_key_prefix=aws.DATASET_PREFIX,
            prune=True,
            retain_on_delete=False,
            memory_limit=512,
            extract=True,
        )
        self.dataset_deployment = deployment

        self.dataset_ref = self._export(self.dataset_bucket, aws.OUT_DATASET_BUCKET, "Dataset")
        self.results_ref = self._export(self.results_bucket, aws.OUT_RESULTS_BUCKET, "Results")
        self._acknowledge_generated(self.dataset_bucket)

    def _export(self, bucket: s3.Bucket, name_output: str, label: str) -> BucketRef:
        ref = BucketRef(
            arn_export=f"{self.stack_name}-{label}BucketArn",
            name_export=f"{self.stack_name}-{label}BucketName",
        )
        cdk.CfnOutput(self, name_output, value=bucket.bucket_name, export_name=ref.name_export)
        cdk.CfnOutput(
            self, f"{label}BucketArn", value=bucket.bucket_arn, export_name=ref.arn_export
        )
        return ref

    def _bucket(self, construct_id: str, *, retain: bool) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            construct_id,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=not retain,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Benchmark buckets hold a public dataset, model bundles and results for the "
            "lifetime of a run; server access logs would need a third bucket that outlives "
            "them, for no audit requirement.",
        )
        return bucket

    def _acknowledge_generated(self, dataset: s3.Bucket) -> None:
        """Acknowledge findings on the handlers CDK generates for the deployment/auto-delete.

        They live at stack level (singletons), so the stack is the narrowest construct that
        holds them; each finding is named exactly.
        """
        acknowledge(
            self,
            "AwsSolutions-IAM4",
            "CDK's BucketDeployment handler uses the AWS-managed AWSLambdaBasicExecutionRole "
            "for its own logs only.",
            findings=[
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole"
            ],
        )
        dataset_logical = self.resolve(self.get_logical_id(dataset.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "CDK's BucketDeployment handler copies the dataset asset from the CDK asset bucket "
            "into the dataset bucket and prunes stale objects there; CDK's grants need these "
            "object-level wildcards, limited to those two buckets.",
            findings=[
                "Action::s3:GetObject*",
                "Action::s3:GetBucket*",
                "Action::s3:List*",
                "Action::s3:Abort*",
                "Action::s3:DeleteObject*",
                f"Resource::<{dataset_logical}.Arn>/*",
                asset_bucket_finding(self),
            ],
        )
        acknowledge(
            self,
            "AwsSolutions-L1",
            "The runtime of CDK's BucketDeployment handler is chosen by aws-cdk-lib, not by "
            "this app; it moves forward with aws-cdk-lib upgrades.",
        )


def asset_bucket_finding(stack: cdk.Stack) -> str:
    """cdk-nag's IAM5 finding id for objects in the CDK bootstrap asset bucket of ``stack``."""
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    qualifier = stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier") or "hnb659fds"
    return f"Resource::arn:<AWS::Partition>:s3:::cdk-{qualifier}-assets-{account}-{region}/*"
