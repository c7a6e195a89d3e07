"""The comparison instance construct: the EC2 instance (t3.xlarge by default) the functions are
measured against.

Hardening: no inbound rule at all (egress HTTPS only: SSM, S3, package mirrors), managed
through SSM Run Command (no SSH key, no open port), IMDSv2 required, encrypted gp3 root
volume, and an instance role limited to the two buckets' prefixes it needs plus the project
source asset. The user data (``ec2/bootstrap.sh``) installs Python 3.11 and this project,
shipped as a CDK asset, with the training extra; the ``ec2`` target then runs
``ec2/runner.py`` on it.

A burstable type (the T family, t3.xlarge by default) is launched in the CPU credit mode the
configuration states (``cpu_credits``: ``unlimited`` by default, T3's own default, in which CPU
above the baseline is billed as surplus credits; ``standard`` throttles to the baseline
instead), so the deployed instance is the one the report's VM model prices. Other types have
no credits and get no credit specification.

The instance lives in a one-AZ VPC with a public subnet and no NAT gateway (a NAT gateway
would cost more per hour than the instance); the public address carries egress only.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from serverless_hpc import aws
from serverless_hpc.workloads.spec import SCRATCH_PREFIX
from stacks.config import REPO_ROOT
from stacks.data import Dataset, objects_finding
from stacks.nag import acknowledge, checkov_skip

SHPC_HOME: Final = "/opt/serverless-hpc"
RUNNER_COMMAND: Final = f"{SHPC_HOME}/venv/bin/python {SHPC_HOME}/src/ec2/runner.py"
#: Instance families with CPU credits.
BURSTABLE_FAMILIES: Final = frozenset({"t2", "t3", "t3a", "t4g"})
#: The project source the instance installs: the package, its metadata and ec2/.
SOURCE_EXCLUDE: Final = [
    "*",
    "!serverless_hpc",
    "!ec2",
    "!pyproject.toml",
    "!README.md",
    "!LICENSE",
    "**/__pycache__",
    "**/*.pyc",
]


def is_burstable(instance_type: str) -> bool:
    """Whether ``instance_type`` is of a burstable (CPU credit) family: t2, t3, t3a, t4g."""
    return instance_type.split(".", 1)[0] in BURSTABLE_FAMILIES


class ComparisonInstance(Construct):
    """The comparison instance, its network and role; see the module docstring.

    Takes the buckets by attribute from :class:`~stacks.data.Dataset`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dataset: Dataset,
        instance_type: str,
        root_volume_gb: int,
        cpu_credits: str = "unlimited",
    ) -> None:
        super().__init__(scope, construct_id)
        dataset_bucket = dataset.dataset_bucket
        results_bucket = dataset.results_bucket
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=1,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                )
            ],
        )
        sg = ec2.SecurityGroup(
            self,
            "InstanceSg",
            vpc=vpc,
            description="serverless-hpc comparison instance: no inbound, HTTPS egress only",
            allow_all_outbound=False,
        )
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS: SSM, S3, packages")

        role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="serverless-hpc comparison instance: SSM agent, dataset read, "
            "models/results/scratch read-write",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[dataset_bucket.arn_for_objects(f"{aws.DATASET_PREFIX}/*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[
                    results_bucket.arn_for_objects(f"{aws.MODELS_PREFIX}/*"),
                    results_bucket.arn_for_objects(f"{aws.RESULTS_PREFIX}/*"),
                    # a coupled job's rounds (kmers, staged matmul) exchange data here
                    results_bucket.arn_for_objects(f"{SCRATCH_PREFIX}/*"),
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[dataset_bucket.bucket_arn, results_bucket.bucket_arn],
            )
        )

        source = s3_assets.Asset(
            self,
            "ProjectSource",
            path=str(REPO_ROOT),
            exclude=SOURCE_EXCLUDE,
            ignore_mode=cdk.IgnoreMode.DOCKER,
        )
        # Exactly the one source object, not CDK's bucket-wide asset grant.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[source.bucket.arn_for_objects(source.s3_object_key)],
            )
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_s3_download_command(
            bucket=source.bucket, bucket_key=source.s3_object_key, local_file=f"{SHPC_HOME}/src.zip"
        )
        user_data.add_commands(f"export SHPC_SRC_ZIP={SHPC_HOME}/src.zip")
        bootstrap = (REPO_ROOT / "ec2" / "bootstrap.sh").read_text(encoding="utf-8")
        user_data.add_commands(*[ln for ln in bootstrap.splitlines() if not ln.startswith("#!")])

        itype = ec2.InstanceType(instance_type)
        arm = itype.architecture == ec2.InstanceArchitecture.ARM_64
        #: None for a type without CPU credits (CloudFormation refuses one there)
        self.cpu_credits = cpu_credits if is_burstable(instance_type) else None
        self.instance = ec2.Instance(
            self,
            "Instance",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            associate_public_ip_address=True,
            instance_type=itype,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=ec2.AmazonLinuxCpuType.ARM_64 if arm else ec2.AmazonLinuxCpuType.X86_64
            ),
            security_group=sg,
            role=role,
            require_imdsv2=True,
            credit_specification=ec2.CpuCredits(self.cpu_credits.upper())
            if self.cpu_credits
            else None,
            user_data=user_data,
            user_data_causes_replacement=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        root_volume_gb,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        self._acknowledge(role, vpc, dataset)

    def _acknowledge(self, role: iam.Role, vpc: ec2.Vpc, dataset: Dataset) -> None:
        """Acknowledgments, each with its reason."""
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Object access is limited to the dataset, models/, results/ and scratch/ prefixes, "
            "whose keys are created at run time, so the prefix wildcards are the narrowest "
            "resources.",
            findings=[
                objects_finding(dataset.dataset_bucket, aws.DATASET_PREFIX),
                objects_finding(dataset.results_bucket, aws.MODELS_PREFIX),
                objects_finding(dataset.results_bucket, aws.RESULTS_PREFIX),
                objects_finding(dataset.results_bucket, SCRATCH_PREFIX),
            ],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AmazonSSMManagedInstanceCore is the AWS-maintained minimum for the SSM agent "
            "(Run Command replaces SSH); a hand-copied policy would drift.",
            findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"],
        )
        acknowledge(
            vpc,
            "AwsSolutions-VPC7",
            "One benchmark instance with no inbound rules; VPC flow logs would add a log group "
            "and a role for nothing worth auditing.",
        )
        acknowledge(
            self.instance,
            "AwsSolutions-EC28",
            "Detailed monitoring costs extra; the runner records the benchmark's own timings.",
        )
        checkov_skip(
            self.instance,
            CKV_AWS_88="The public address carries egress only (no inbound rule exists); it "
            "replaces a NAT gateway, which would cost more per hour than the instance.",
        )
        acknowledge(
            self.instance,
            "AwsSolutions-EC29",
            "The instance is disposable by design (make destroy / recreate); termination "
            "protection would block the teardown.",
        )
