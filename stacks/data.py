"""The dataset construct: the dataset bucket (staged at deploy) and the models/results bucket.

Both buckets block public access, are encrypted (SSE-S3), refuse non-TLS requests and are
destroyed with the stack, objects included (``autoDeleteObjects``), so ``make destroy`` and
``make recreate`` leave nothing. ``retain_results=true`` in the context keeps the
models/results bucket and its contents instead.

The four canonical Fashion-MNIST files are checked against their published md5 sums at synth
time and shipped as a CDK asset that a ``BucketDeployment`` copies into the dataset bucket
during ``cdk deploy``: the deploy cannot stage a wrong or truncated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct, IConstruct

from serverless_hpc import aws
from serverless_hpc.data import fashion_mnist as fm
from stacks.config import ConfigError
from stacks.nag import acknowledge, checkov_skip, generated_child

#: Id prefixes of the handlers CDK adds at stack level: every BucketDeployment's (one
#: singleton function) and the auto-delete-objects provider of the buckets.
BUCKET_DEPLOYMENT_HANDLER: Final = "Custom::CDKBucketDeployment"
AUTO_DELETE_PROVIDER: Final = "Custom::S3AutoDeleteObjectsCustomResourceProvider"
#: Why checkov's Lambda checks do not apply to a handler CDK generates for deploy time.
GENERATED_HANDLER_REASONS: Final = {
    "CKV_AWS_116": "CDK's deploy-time handler is invoked by CloudFormation only, which waits "
    "for its answer and fails the deploy on an error; a dead-letter queue would hold nothing.",
    "CKV_AWS_117": "CDK's deploy-time handler talks only to S3 and CloudFormation; a VPC "
    "would need a NAT gateway or endpoints for a function that runs at deploy and destroy.",
    "CKV_AWS_115": "CDK's deploy-time handler runs once per deploy or destroy, invoked by "
    "CloudFormation; a concurrency reservation would only take capacity from the account.",
}


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


def objects_finding(bucket: s3.IBucket, prefix: str) -> str:
    """cdk-nag's IAM5 finding id for ``<bucket arn>/<prefix>/*`` (a bucket of this stack)."""
    return f"Resource::<{logical_id(bucket)}.Arn>/{prefix}/*"


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of ``construct``'s resource (for finding ids)."""
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(construct.node.default_child)))  # type: ignore[arg-type]


class Dataset(Construct):
    """The dataset bucket, staged at deploy, and the models/results bucket.

    The other constructs take this one by attribute (``dataset.dataset_bucket``,
    ``dataset.results_bucket``) and grant themselves exactly the prefixes they need.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset_dir: Path,
        retain_results: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        files = verified_dataset_files(dataset_dir)

        self.dataset_bucket = self._bucket("DatasetBucket", retain=False)
        self.results_bucket = self._bucket("ResultsBucket", retain=retain_results)

        self.deployment = s3deploy.BucketDeployment(
            self,
            "StageDataset",
            sources=[
                s3deploy.Source.asset(
                    str(dataset_dir),
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
        self._acknowledge_generated()

    @property
    def dataset_uri(self) -> str:
        """``s3://<dataset bucket>/fashion-mnist`` (a token until deploy)."""
        return f"s3://{self.dataset_bucket.bucket_name}/{aws.DATASET_PREFIX}"

    @property
    def store_uri(self) -> str:
        """The model store: ``s3://<results bucket>`` (a token until deploy)."""
        return f"s3://{self.results_bucket.bucket_name}"

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
        access_logs = (
            "Benchmark buckets hold a public dataset, model bundles and results for the "
            "lifetime of a run; server access logs would need a third bucket that outlives "
            "them, for no audit requirement."
        )
        acknowledge(bucket, "AwsSolutions-S1", access_logs)
        checkov_skip(
            bucket,
            CKV_AWS_18=access_logs,
            CKV_AWS_21="Objects are never overwritten in place: model bundles are written "
            "under a new version key each time, and the dataset is md5-checked at synth and "
            "redeployed from its asset; versioning would keep copies the teardown must purge.",
        )
        return bucket

    def _acknowledge_generated(self) -> None:
        """Acknowledge findings on the handler CDK generates for the BucketDeployment.

        CDK adds it at stack level (a singleton shared by every deployment of the stack), so
        the acknowledgments go on that generated construct, and each finding is named exactly.
        """
        stack = cdk.Stack.of(self)
        handler = generated_child(stack, BUCKET_DEPLOYMENT_HANDLER)
        acknowledge(
            handler,
            "AwsSolutions-IAM4",
            "CDK's BucketDeployment handler uses the AWS-managed AWSLambdaBasicExecutionRole "
            "for its own logs only.",
            findings=[
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole"
            ],
        )
        acknowledge(
            handler,
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
                f"Resource::<{logical_id(self.dataset_bucket)}.Arn>/*",
                asset_bucket_finding(stack),
            ],
        )
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "The runtime of CDK's BucketDeployment handler is chosen by aws-cdk-lib, not by "
            "this app; it moves forward with aws-cdk-lib upgrades.",
        )
        checkov_skip(
            handler,
            **GENERATED_HANDLER_REASONS,
            CKV_AWS_173="The BucketDeployment handler's environment holds only aws-cdk-lib's "
            "settings, no secrets; Lambda encrypts it at rest with an AWS-managed key.",
        )
        provider = generated_child(stack, AUTO_DELETE_PROVIDER)
        checkov_skip(provider.node.find_child("Handler"), **GENERATED_HANDLER_REASONS)


def asset_bucket_finding(stack: cdk.Stack) -> str:
    """cdk-nag's IAM5 finding id for objects in the CDK bootstrap asset bucket of ``stack``."""
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    qualifier = stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier") or "hnb659fds"
    return f"Resource::arn:<AWS::Partition>:s3:::cdk-{qualifier}-assets-{account}-{region}/*"
