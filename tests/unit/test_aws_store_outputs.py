"""S3Store, stack-output lookup and ``shpc status`` against moto (real boto3, fake AWS).

moto implements S3, CloudFormation (stacks and their outputs) and the tagging API in
memory; what it does not emulate here: IAM enforcement (every call is allowed), eventual
consistency, and real resource provisioning behind a stack.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from serverless_hpc import aws, workloads
from serverless_hpc.aws import cli as aws_cli
from serverless_hpc.aws.outputs import (
    OutputsUnavailable,
    comparison_outputs,
    data_outputs,
    function_outputs,
)
from serverless_hpc.aws.status import tagged_resources
from serverless_hpc.contract import InvalidRequest, NotFound
from serverless_hpc.store import open_store, resolve_version, save_bundle
from serverless_hpc.store_s3 import S3Store, parse_s3_uri
from serverless_hpc.workloads.spec import WorkloadSpec
from tests.doubles.aws import create_stack_with_outputs, moto_aws


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """moto's in-memory AWS (test double), with dummy credentials and a fresh S3 cache."""
    with moto_aws(monkeypatch, tmp_path / "s3cache"):
        yield


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(InvalidRequest):
        parse_s3_uri("s3:///nobucket")


def test_s3_store_round_trip_and_bundle_protocol(aws_env: None, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="results")
    # GIVEN the store open_store gives for an s3:// URI
    store = open_store("s3://results/runs")
    assert isinstance(store, S3Store) and store.uri == "s3://results/runs"
    # WHEN a bundle is saved through the shared protocol
    version = save_bundle(store, "fashion-cnn", {"model.tflite": b"\x00tflite"}, {"acc": 0.9})
    # THEN LATEST points at it, objects sit under the prefix, and local_path caches the file
    assert resolve_version(store, "fashion-cnn") == version
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="results")["Contents"]}
    assert f"runs/models/fashion-cnn/{version}/model.tflite" in keys
    assert store.exists(f"models/fashion-cnn/{version}/model.tflite")
    assert not store.exists("models/fashion-cnn/nope/model.tflite")
    path = store.local_path(f"models/fashion-cnn/{version}/model.tflite")
    assert path.read_bytes() == b"\x00tflite"
    assert str(path).startswith(str(tmp_path / "s3cache"))
    assert store.local_path(f"models/fashion-cnn/{version}/model.tflite") == path  # cached


def test_s3_store_missing_keys_are_not_found(aws_env: None) -> None:
    boto3.client("s3").create_bucket(Bucket="results")
    store = S3Store.from_uri("s3://results")
    with pytest.raises(NotFound):
        store.get_bytes("models/x/LATEST")
    with pytest.raises(NotFound):
        store.local_path("models/x/v1/model.tflite")
    with pytest.raises(NotFound, match="run the workload that writes it first"):
        resolve_version(store, "x")
    with pytest.raises(InvalidRequest):
        store.get_bytes("../escape")


def deploy_outputs_double(prefix: str = aws.DEFAULT_STACK_PREFIX) -> str:
    """Create the deployment's stack in moto's CloudFormation with the outputs the app publishes."""
    cfn = boto3.client("cloudformation")
    name = aws.stack_name(prefix)
    fn = {aws.function_output_key(w): f"fn-{w}" for w in workloads.names()}
    create_stack_with_outputs(
        cfn,
        name,
        {
            aws.OUT_DATASET_BUCKET: "ds-bucket",
            aws.OUT_RESULTS_BUCKET: "res-bucket",
            **fn,
            aws.OUT_ARCHITECTURE: "arm64",
            aws.OUT_INSTANCE_ID: "i-0123456789abcdef0",
            aws.OUT_INSTANCE_TYPE: "t3.xlarge",
            aws.OUT_ROOT_VOLUME_GB: "30",
            aws.OUT_RUNNER_COMMAND: "/opt/serverless-hpc/venv/bin/python runner.py",
        },
    )
    return name


def test_stack_outputs_lookup(aws_env: None) -> None:
    deploy_outputs_double()
    cfn = boto3.client("cloudformation")
    data = data_outputs(cfn, "Shpc")
    assert data.dataset_uri == "s3://ds-bucket/fashion-mnist"
    assert data.store_uri == "s3://res-bucket"
    fns = function_outputs(cfn, "Shpc")
    assert fns.functions == {w: f"fn-{w}" for w in workloads.names()}
    assert {"train", "classify", "dataproc"} <= set(fns.functions)
    assert fns.architecture == "arm64"
    comp = comparison_outputs(cfn, "Shpc")
    assert comp.instance_type == "t3.xlarge" and comp.root_volume_gb == 30.0


def test_missing_stack_or_output_is_a_clear_error(aws_env: None) -> None:
    cfn = boto3.client("cloudformation")
    with pytest.raises(OutputsUnavailable, match="make deploy"):
        data_outputs(cfn, "Nope")
    create_stack_with_outputs(cfn, aws.stack_name("Half"), {aws.OUT_DATASET_BUCKET: "ds"})
    with pytest.raises(OutputsUnavailable, match=aws.OUT_RESULTS_BUCKET):
        data_outputs(cfn, "Half")
    # a deployment made before a workload existed names the missing function
    with pytest.raises(OutputsUnavailable, match=aws.function_output_key("train")):
        function_outputs(cfn, "Half")


def test_lambda_target_reads_function_names_from_outputs(aws_env: None) -> None:
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings, TargetUnavailable

    with pytest.raises(TargetUnavailable, match="make deploy"):
        LambdaTarget(TargetSettings()).open()
    deploy_outputs_double()
    target = LambdaTarget(TargetSettings())
    target.open()
    assert target.functions["classify"] == "fn-classify"
    assert target.architecture == "arm64"
    assert target.describe()["region"] == "us-east-1"


def test_status_lists_tagged_resources(aws_env: None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tagged")
    s3.put_bucket_tagging(
        Bucket="tagged",
        Tagging={"TagSet": [{"Key": aws.PROJECT_TAG_KEY, "Value": aws.PROJECT_TAG_VALUE}]},
    )
    s3.create_bucket(Bucket="untagged")
    found = tagged_resources(boto3.client("resourcegroupstaggingapi"))
    assert [r.arn for r in found] == ["arn:aws:s3:::tagged"]
    assert found[0].service == "s3"


def test_status_command(aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    aws_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "--expect-empty"])
    assert args.func(args) == aws_cli.EXIT_OK
    assert "nothing tagged project=serverless-hpc is alive" in capsys.readouterr().out
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="left-behind")
    s3.put_bucket_tagging(
        Bucket="left-behind", Tagging={"TagSet": [{"Key": "project", "Value": "serverless-hpc"}]}
    )
    assert args.func(args) == aws_cli.EXIT_ALIVE
    assert "arn:aws:s3:::left-behind" in capsys.readouterr().out
    args = parser.parse_args(["status", "--json"])
    assert args.func(args) == aws_cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["resources"][0]["arn"] == "arn:aws:s3:::left-behind"


def test_status_cli_defaults_match_the_project_tag_and_import_only_stdlib() -> None:
    import ast
    import sys

    parser = argparse.ArgumentParser()
    aws_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status"])
    assert (args.tag_key, args.tag_value) == (aws.PROJECT_TAG_KEY, aws.PROJECT_TAG_VALUE)
    tree = ast.parse(Path(aws_cli.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) or "" for n in top}
    assert all(m.split(".")[0] in sys.stdlib_module_names or m == "__future__" for m in modules), (
        modules
    )


def test_a_copied_workload_is_looked_up_by_the_lambda_target(
    aws_env: None, copy_workload: Callable[[str, str], WorkloadSpec]
) -> None:
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings

    # GIVEN a copy of dataproc under a new name, deployed (its output published)
    copy_workload("dataproc", "dataproc2")
    deploy_outputs_double()
    # WHEN the Lambda target reads the deployment
    target = LambdaTarget(TargetSettings())
    target.open()
    # THEN it knows the copy's function, under the key the CDK app publishes
    assert target.functions["dataproc2"] == "fn-dataproc2"
    assert aws.function_output_key("dataproc2") == "Dataproc2FunctionName"


def test_lambda_scratch_store_is_the_results_bucket_and_loses_only_the_chain(
    aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings

    # GIVEN a deployment whose results bucket holds a chain's checkpoints and a model bundle
    deploy_outputs_double()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="res-bucket")
    chain = "models/fashion-cnn/checkpoints/run-1/lambda-r0"
    for key in (f"{chain}/checkpoint.npz", f"{chain}/progress.json", "models/fashion-cnn/v1/m"):
        s3.put_object(Bucket="res-bucket", Key=key, Body=b"x")
    target = LambdaTarget(TargetSettings())
    target.open()
    # WHEN the driver asks for the store and deletes the finished chain's prefix
    store = target.scratch_store()
    assert isinstance(store, S3Store) and store.uri == "s3://res-bucket"
    assert target.scratch_store() is store  # looked up once
    assert store.delete_prefix(chain) == 2
    # THEN only the chain's objects are gone
    left = {o["Key"] for o in s3.list_objects_v2(Bucket="res-bucket")["Contents"]}
    assert left == {"models/fashion-cnn/v1/m"}


def test_lambda_scratch_store_without_outputs_is_none_said_once(
    aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings

    # GIVEN function names passed by hand and no deployed stack to read the bucket from
    extra = {f"function.{w}": f"fn-{w}" for w in workloads.names()} | {"architecture": "x86_64"}
    target = LambdaTarget(TargetSettings(extra=extra))
    target.open()
    # THEN there is no scratch store, and the reason is logged once
    with caplog.at_level("WARNING"):
        assert target.scratch_store() is None
        assert target.scratch_store() is None
    said = [r for r in caplog.records if "model store's bucket" in r.getMessage()]
    assert len(said) == 1 and "make deploy" in said[0].getMessage()
