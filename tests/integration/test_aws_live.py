"""Real AWS, end to end: deploy -> bench (lambda, ec2) -> destroy -> nothing tagged left.

Marked ``aws`` and skipped, with the reason, without AWS credentials (or without a Docker
engine to build the images). It costs money (cents: minutes of a t3.xlarge plus Lambda
invocations) and takes tens of minutes. Run it with ``pytest -m aws tests/integration``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.aws, pytest.mark.slow]
#: The tagging API forgets deleted resources with some delay; wait at most this long.
TEARDOWN_VISIBLE_S = 600.0


def _unavailable_reason() -> str | None:
    try:
        import boto3
    except ImportError:
        return "boto3 is not installed (pip install 'serverless-hpc[aws]')"
    session = boto3.Session()
    if session.get_credentials() is None:
        return "no AWS credentials configured (set AWS_PROFILE or run 'aws configure')"
    if session.region_name is None:
        return "no AWS region configured (set AWS_REGION)"
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "info"], capture_output=True, check=False).returncode
    ):
        return "no Docker engine: the Lambda container images cannot be built"
    return None


def _alive() -> list[str]:
    import boto3

    from serverless_hpc.aws.status import tagged_resources

    return [r.arn for r in tagged_resources(boto3.client("resourcegroupstaggingapi"))]


def test_deploy_bench_destroy(data_dir: Path, tmp_path: Path) -> None:
    reason = _unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cdk = [str(REPO / "node_modules/.bin/cdk"), "-c", f"dataset_dir={data_dir}"]
    out = tmp_path / "run"
    try:
        deploy = [*cdk, "deploy", "--all", "--require-approval", "never"]
        subprocess.run(deploy, cwd=REPO, env=env, check=True, timeout=3600)
        bench = [
            *(sys.executable, "-m", "serverless_hpc.cli", "bench", "--targets", "lambda,ec2"),
            *("--images", "300", "--shards", "1,3", "--repeats", "2", "--cold-repeats", "1"),
            *("--modes", "natural,cold", "--train-epochs", "1", "--train-limit", "2000"),
            *("--out", str(out), "-q"),
        ]
        subprocess.run(bench, env=env, check=True, timeout=3600)
    finally:
        destroy = [*cdk, "destroy", "--all", "--force"]
        subprocess.run(destroy, cwd=REPO, env=env, check=True, timeout=3600)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {r["target"] for r in records} == {"lambda", "ec2"}
    assert all(r["ok"] for r in records)
    assert all(r["cost_usd"] is not None for r in records)
    assert any(r["cold"] and r["init_ms"] for r in records if r["target"] == "lambda")
    deadline = time.monotonic() + TEARDOWN_VISIBLE_S
    delay = 5.0
    while (alive := _alive()) and time.monotonic() < deadline:
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 60.0)
    assert alive == [], f"still tagged after destroy: {alive}"
