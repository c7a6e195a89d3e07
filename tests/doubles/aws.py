"""moto's in-memory AWS (test double) for the AWS tests, and stacks that publish outputs.

moto answers the real boto3 clients; what it does not emulate (IAM enforcement, latency,
real provisioning behind a stack) is said in each test module that uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from serverless_hpc.store_s3 import default_client


@contextmanager
def moto_aws(monkeypatch: pytest.MonkeyPatch, s3_cache: Path) -> Iterator[None]:
    """moto with dummy credentials, a fresh S3 client and the S3 download cache in ``s3_cache``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SHPC_S3_CACHE", str(s3_cache))
    default_client.cache_clear()
    with mock_aws():
        yield
    default_client.cache_clear()


def create_stack_with_outputs(cfn: Any, name: str, outputs: dict[str, str]) -> None:
    """Create stack ``name`` in moto's CloudFormation, publishing ``outputs``.

    A stack needs one resource; an SSM parameter is the cheapest one moto provisions.
    """
    template = {
        "Resources": {
            "Placeholder": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": f"/shpc-test/{name}", "Type": "String", "Value": "x"},
            }
        },
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
