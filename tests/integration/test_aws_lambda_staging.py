"""The Lambda adapter on the real dataset, staged from moto's S3 into a temp "/tmp".

moto stands in for S3 only (test double: no IAM, no latency). The workload, the md5 checks
and the adapter are the real code a function runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from serverless_hpc.aws.function.adapter import LambdaAdapter
from serverless_hpc.data import fashion_mnist as fm
from tests.doubles.aws import moto_aws

pytestmark = pytest.mark.integration
#: What Lambda passes as ``context`` (test double: only the attributes the adapter reads).
CONTEXT = SimpleNamespace(memory_limit_in_mb="2048", log_stream_name="2026/11/24/[$LATEST]abc")


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path) -> Iterator[str]:
    with moto_aws(monkeypatch, tmp_path / "s3cache"):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ds-bucket")
        for spec in fm.FILES["test"]:
            s3.upload_file(str(data_dir / spec.name), "ds-bucket", f"fashion-mnist/{spec.name}")
        yield "ds-bucket"


def test_first_invocation_stages_then_warm_ones_do_not(bucket: str, tmp_path: Path) -> None:
    env = {
        "SHPC_WORKLOAD": "dataproc",
        "SHPC_DATASET_URI": f"s3://{bucket}/fashion-mnist",
        "FASHION_MNIST_DIR": str(tmp_path / "fashion-mnist"),
    }
    adapter = LambdaAdapter(env=env)
    adapter.init()
    event = {"workload": "dataproc", "params": {"split": "test", "start": 0, "end": 500}}
    # WHEN the function runs cold, then warm
    cold = adapter(event, CONTEXT)
    warm = adapter(event, CONTEXT)
    # THEN the cold one downloaded the two test files (HEAD + GET each), the warm one nothing
    assert cold["ok"], cold
    assert cold["runtime"]["s3_requests"]["get"] >= 2
    assert warm["runtime"]["s3_requests"] == {"get": 0, "put": 0}
    assert sorted(p.name for p in (tmp_path / "fashion-mnist").iterdir()) == sorted(
        s.name for s in fm.FILES["test"]
    )
    assert cold["result"]["n"] == 500
    assert cold["runtime"]["memory_mb"] == 2048
    assert cold["runtime"]["instance"] == warm["runtime"]["instance"] == CONTEXT.log_stream_name


def test_corrupt_dataset_object_is_a_dataset_error(bucket: str, tmp_path: Path) -> None:
    boto3.client("s3").put_object(
        Bucket=bucket, Key="fashion-mnist/t10k-labels-idx1-ubyte.gz", Body=b"truncated"
    )
    adapter = LambdaAdapter(
        env={
            "SHPC_WORKLOAD": "dataproc",
            "SHPC_DATASET_URI": f"s3://{bucket}/fashion-mnist",
            "FASHION_MNIST_DIR": str(tmp_path / "d"),
        }
    )
    out = adapter({"workload": "dataproc", "params": {}}, CONTEXT)
    assert out["ok"] is False
    assert out["error"]["type"] == "DatasetError"
    assert "md5" in out["error"]["message"]
    assert not (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").exists()  # never left behind
