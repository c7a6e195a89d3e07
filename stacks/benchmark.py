"""The deployment: one stack that composes the project's constructs, wired by attribute.

Constructs are the logical units (:class:`~stacks.data.Dataset`, one
:class:`~stacks.functions.WorkloadFunction` per workload spec,
:class:`~stacks.comparison.ComparisonInstance`); the stack is the deployment unit. They were
three stacks joined by hand-named exports; but they always deploy and are destroyed
together (``make deploy`` / ``make destroy``), no part has a life of its own, and exports
pin a stack's outputs while another stack imports them (a changed bucket could not be
replaced). One stack lets the constructs take each other as objects, and CloudFormation
orders the resources by their references.

The stack publishes what the driver reads as ``CfnOutput``s with fixed keys
(:mod:`serverless_hpc.aws`): the buckets, one function name per workload, the architecture,
and the comparison instance.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from serverless_hpc import aws, workloads
from stacks.comparison import RUNNER_COMMAND, ComparisonInstance
from stacks.config import AppConfig
from stacks.data import Dataset
from stacks.functions import WorkloadFunction


class BenchmarkStack(cdk.Stack):
    """The whole deployment; see the module docstring."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.dataset = Dataset(
            self,
            "Dataset",
            dataset_dir=config.dataset_dir,
            retain_results=config.retain_results,
        )
        self.functions: dict[str, WorkloadFunction] = {}
        for spec in workloads.specs().values():
            self.functions[spec.name] = WorkloadFunction(
                self,
                f"{aws.construct_name(spec.name)}Workload",
                spec=spec,
                sizing=config.functions[spec.name],
                dataset=self.dataset,
                architecture=config.architecture,
                ephemeral_storage_mb=config.ephemeral_storage_mb,
                reserved_concurrency=config.reserved_concurrency,
                log_retention_days=config.log_retention_days,
            )
        self.comparison = ComparisonInstance(
            self,
            "Comparison",
            dataset=self.dataset,
            instance_type=config.instance_type,
            cpu_credits=config.cpu_credits,
            root_volume_gb=config.root_volume_gb,
        )
        self._outputs(config)

    def _outputs(self, config: AppConfig) -> None:
        """What the driver reads (:mod:`serverless_hpc.aws.outputs`), under fixed keys."""
        cdk.CfnOutput(self, aws.OUT_DATASET_BUCKET, value=self.dataset.dataset_bucket.bucket_name)
        cdk.CfnOutput(self, aws.OUT_RESULTS_BUCKET, value=self.dataset.results_bucket.bucket_name)
        for name, fn in self.functions.items():
            cdk.CfnOutput(self, aws.function_output_key(name), value=fn.function.function_name)
        cdk.CfnOutput(self, aws.OUT_ARCHITECTURE, value=config.architecture)
        cdk.CfnOutput(self, aws.OUT_INSTANCE_ID, value=self.comparison.instance.instance_id)
        cdk.CfnOutput(self, aws.OUT_INSTANCE_TYPE, value=config.instance_type)
        cdk.CfnOutput(self, aws.OUT_ROOT_VOLUME_GB, value=str(config.root_volume_gb))
        cdk.CfnOutput(self, aws.OUT_RUNNER_COMMAND, value=RUNNER_COMMAND)
