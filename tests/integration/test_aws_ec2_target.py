"""The ``ec2`` target end to end against moto, with the real runner on the real dataset.

Test doubles, and what they do not emulate:

* **moto** stands in for EC2 (instance state, instance types), CloudFormation (stack outputs),
  S3 (requests, results, dataset) and SSM. moto's SSM ``SendCommand`` records the command and
  reports it ``Success`` at once: it runs nothing, has no agent, no queueing, no execution
  timeout and no stdout/stderr. So:
* **InstanceDouble** plays the instance: a botocore event hook on ``SendCommand`` parses the
  command the target sent and runs ``ec2/runner.py``'s ``main`` with it, in this process,
  against moto's S3, before moto answers. It keeps the target's argv and only pins where the
  "instance" keeps its data (a temp dir) and one worker (no fork inside pytest).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_hpc import aws
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.ec2 import Ec2Target
from serverless_hpc.workloads.spec import split_ranges
from tests.doubles.aws import create_stack_with_outputs, moto_aws
from tests.doubles.clock import FakeClock

pytestmark = pytest.mark.integration


class InstanceDouble:
    """Runs the SSM command's runner in-process (see the module docstring)."""

    def __init__(self, data_dir: Path, clock: FakeClock, run_seconds: float) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.run_seconds = run_seconds
        self.commands: list[str] = []
        self.write_results = True

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        from ec2 import runner

        command = params["Parameters"]["commands"][0]
        self.commands.append(command)
        if "runner.py" not in command:
            return  # the bootstrap check: the double's "instance" is always bootstrapped
        argv = shlex.split(command)
        env = [a for a in argv if "=" in a and not a.startswith("-")]
        assert env == ["AWS_DEFAULT_REGION=us-east-1"]
        args = argv[len(env) + 2 :]  # drop "<python> <runner.py>"
        if self.write_results:
            assert runner.main([*args, f"--data-dir={self.data_dir}", "--workers=1"]) == 0
        self.clock.now += self.run_seconds


@pytest.fixture
def deployed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path
) -> Iterator[dict[str, Any]]:
    """moto with the buckets, the staged dataset, an instance and the stacks' outputs."""
    # The runner, run here in-process by the instance double, points FASHION_MNIST_DIR at the
    # instance's staged copy (as it does on a real instance); the test gives it back after.
    monkeypatch.setenv("FASHION_MNIST_DIR", str(data_dir))
    with moto_aws(monkeypatch, tmp_path / "s3cache"):
        s3 = boto3.client("s3")
        for bucket in ("ds-bucket", "res-bucket"):
            s3.create_bucket(Bucket=bucket)
        for spec in fm.FILES["test"]:  # what 'make deploy' stages (the test split suffices here)
            s3.upload_file(str(data_dir / spec.name), "ds-bucket", f"fashion-mnist/{spec.name}")
        ec2 = boto3.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(
            ImageId=image, InstanceType="t3.xlarge", MinCount=1, MaxCount=1
        )
        instance_id = instance["Instances"][0]["InstanceId"]
        cfn = boto3.client("cloudformation")
        outputs = {
            aws.stack_name(): {
                aws.OUT_DATASET_BUCKET: "ds-bucket",
                aws.OUT_RESULTS_BUCKET: "res-bucket",
                aws.OUT_INSTANCE_ID: instance_id,
                aws.OUT_INSTANCE_TYPE: "t3.xlarge",
                aws.OUT_ROOT_VOLUME_GB: "30",
                aws.OUT_RUNNER_COMMAND: "/opt/serverless-hpc/venv/bin/python /opt/serverless-hpc/src/ec2/runner.py",
            },
        }
        for name, outs in outputs.items():
            create_stack_with_outputs(cfn, name, outs)
        # the wall clock the test moves by hand, to check per-second billing
        clock = FakeClock(now=1_000_000.0)
        double = InstanceDouble(tmp_path / "instance-data", clock, run_seconds=12.0)
        session = boto3.Session(region_name="us-east-1")
        session.events.register("provide-client-params.ssm.SendCommand", double)
        yield {"session": session, "clock": clock, "double": double, "instance_id": instance_id}


def requests(shards: int) -> list[dict[str, Any]]:
    out = []
    for i, sh in enumerate(split_ranges(10000, shards)):
        params = {"split": "test", "start": sh.start, "end": sh.end}
        out.append({"workload": "dataproc", "params": params, "run_id": "run-1", "shard": i})
    return out


def test_batch_runs_through_ssm_and_reads_the_runner_results(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    clock: FakeClock = deployed["clock"]
    target = Ec2Target(
        TargetSettings(log_dir=tmp_path / "logs"), session=deployed["session"], clock=clock
    )
    # GIVEN the deployed stacks' outputs and a running instance
    with target:
        assert target.instance_id == deployed["instance_id"]
        assert target.memory_mb == 16384 and target.vcpus == 4
        # WHEN a two-shard dataproc batch runs
        timed = target.invoke_batch(requests(2), timeout_s=60)
        # THEN each request has the instance's own result and timings, plus the batch wall time
        assert [t.outcome.ok for t in timed] == [True, True]
        from serverless_hpc.workloads.dataproc import reduce_partials

        reduced = reduce_partials(t.outcome.response["result"] for t in timed)
        assert reduced["n"] == 10000
        for t in timed:
            assert str(t.outcome.instance).startswith(deployed["instance_id"] + "/")
            assert t.outcome.duration_ms is not None and t.outcome.duration_ms > 0
            assert t.outcome.extra["batch_wall_ms"] == t.client_ms
            assert t.outcome.response["runtime"]["platform"] == "ec2"
            assert t.t_recv - t.t_send == pytest.approx(12.0)
        # the first batch pays the 60-second minimum, split across its records
        hourly = 0.1664 + 30 * 0.08 / 730
        assert sum(t.outcome.cost_usd or 0 for t in timed) == pytest.approx(60 / 3600 * hourly)
        # a later batch is billed only the seconds since (idle time included)
        clock.now += 50.0
        later = target.invoke_batch(requests(1), timeout_s=60)
        assert later[0].outcome.cost_usd == pytest.approx((12 + 50 + 12 - 60) / 3600 * hourly)
    commands = deployed["double"].commands
    assert "cloud-init status --wait" in commands[0]  # bootstrap checked before any batch
    command = commands[1]
    assert "--dataset=s3://ds-bucket/fashion-mnist" in command
    assert "--store=s3://res-bucket" in command
    ledger = json.loads((tmp_path / "logs" / "ec2-cost-ledger.json").read_text())
    assert ledger["billed_seconds"] == 74
    # records of the batch are stored in the results bucket, under results/ec2/<run id>/
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="res-bucket")["Contents"]]
    assert any(k.startswith("results/ec2/run-1/") and k.endswith("results.json") for k in keys)


def test_results_match_a_local_run(deployed: dict[str, Any], data_dir: Path) -> None:
    from serverless_hpc.workloads.base import Context
    from serverless_hpc.workloads.dataproc.function import run

    target = Ec2Target(TargetSettings(), session=deployed["session"], clock=deployed["clock"])
    with target:
        remote = target.invoke(requests(1)[0], timeout_s=60)
    local = run({"split": "test", "start": 0, "end": 10000}, Context(data_dir=data_dir))
    canon = [
        json.dumps(x, sort_keys=True).encode() for x in (remote.response["result"], local.result)
    ]
    assert hashlib.sha256(canon[0]).hexdigest() == hashlib.sha256(canon[1]).hexdigest()


def test_missing_results_are_failed_invocations(deployed: dict[str, Any]) -> None:
    deployed["double"].write_results = False  # the runner died before writing anything
    target = Ec2Target(TargetSettings(), session=deployed["session"], clock=deployed["clock"])
    with target:
        timed = target.invoke_batch(requests(3), timeout_s=60)
    assert len(timed) == 3
    for t in timed:
        assert not t.outcome.ok
        assert t.outcome.response["error"]["type"] == "PlatformError"
        assert t.outcome.cost_usd is not None  # the instance was up all the same


def test_unknown_option_and_missing_stacks(deployed: dict[str, Any]) -> None:
    from serverless_hpc.targets.base import TargetUnavailable

    with pytest.raises(TargetUnavailable, match=r"unknown --target-opt ec2\.size"):
        Ec2Target(TargetSettings(extra={"ec2.size": "big"}))
    target = Ec2Target(TargetSettings(extra={"stack_prefix": "Other"}), session=deployed["session"])
    with pytest.raises(TargetUnavailable, match="not deployed"):
        target.open()
