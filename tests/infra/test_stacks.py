"""``aws_cdk.assertions`` over each stack: the properties issue 3 asks of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from serverless_hpc import aws


def _t(cdk_app: dict[str, Any], name: str) -> Template:
    return cdk_app["templates"][name]


def _resources(template: Template, rtype: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(rtype)
    return found


# -- data stack -------------------------------------------------------------------------------
def test_buckets_block_public_access_encrypt_and_autodelete(cdk_app: dict[str, Any]) -> None:
    # GIVEN the data stack with the default context (retain_results=false)
    t = _t(cdk_app, "data")
    # THEN both buckets block public access, are encrypted and are destroyed with the stack
    buckets = _resources(t, "AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert sse[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert bucket["DeletionPolicy"] == "Delete"
        assert {"Key": "aws-cdk:auto-delete-objects", "Value": "true"} in props["Tags"]
        assert "BucketName" not in props  # CloudFormation names it


def test_bucket_policies_deny_non_tls(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "data")
    policies = _resources(t, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        deny_tls = [
            s
            for s in statements
            if s["Effect"] == "Deny"
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert deny_tls, f"no TLS-only statement in {json.dumps(statements)}"


def test_dataset_is_staged_by_a_bucket_deployment(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "data")
    t.resource_count_is("Custom::CDKBucketDeployment", 1)
    t.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {"DestinationBucketKeyPrefix": aws.DATASET_PREFIX, "Prune": True},
    )


def test_data_outputs_and_exports(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "data")
    outputs = t.to_json()["Outputs"]
    assert {aws.OUT_DATASET_BUCKET, aws.OUT_RESULTS_BUCKET} <= set(outputs)
    assert outputs[aws.OUT_RESULTS_BUCKET]["Export"]["Name"] == "ShpcData-ResultsBucketName"


def test_retain_results_switch_keeps_the_results_bucket(cdk_app: dict[str, Any]) -> None:
    # GIVEN the retain_results context switch
    import aws_cdk as cdk

    from stacks.config import AppConfig
    from stacks.data import DataStack

    base = cdk_app["stacks"]["data"]
    config = AppConfig.from_context(
        {"dataset_dir": str(base.node.try_get_context("dataset_dir")), "retain_results": "true"}.get
    )
    stack = DataStack(cdk.App(), "RetainCheck", config=config)
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    # THEN the results bucket is retained (no auto-delete) and the dataset bucket is not
    policies = sorted(b["DeletionPolicy"] for b in buckets.values())
    assert policies == ["Delete", "Retain"]


# -- functions stack --------------------------------------------------------------------------
def _functions(t: Template) -> dict[str, dict[str, Any]]:
    out = {}
    for fn in _resources(t, "AWS::Lambda::Function").values():
        workload = fn["Properties"]["Environment"]["Variables"]["SHPC_WORKLOAD"]
        out[workload] = fn["Properties"]
    return out


def test_one_image_function_per_workload(cdk_app: dict[str, Any]) -> None:
    fns = _functions(_t(cdk_app, "functions"))
    assert set(fns) == set(aws.WORKLOADS)
    for props in fns.values():
        assert props["PackageType"] == "Image"
        assert props["Architectures"] == ["x86_64"]
        assert "FunctionName" not in props
        assert props["LoggingConfig"]["LogGroup"]  # its own log group
    assert fns["train"]["Timeout"] == 900
    assert fns["train"]["MemorySize"] == 4096
    assert fns["classify"]["MemorySize"] == 2048
    assert fns["classify"]["Timeout"] == 60


def test_train_image_is_separate_from_the_lean_image(cdk_app: dict[str, Any]) -> None:
    fns = _functions(_t(cdk_app, "functions"))

    def image(props: dict[str, Any]) -> str:
        return json.dumps(props["Code"]["ImageUri"], sort_keys=True)

    assert image(fns["classify"]) == image(fns["dataproc"])
    assert image(fns["train"]) != image(fns["classify"])


def test_function_environment_names_buckets_not_literals(cdk_app: dict[str, Any]) -> None:
    fns = _functions(_t(cdk_app, "functions"))
    for props in fns.values():
        env = props["Environment"]["Variables"]
        assert "Fn::ImportValue" in json.dumps(env["SHPC_DATASET_URI"])
        assert "Fn::ImportValue" in json.dumps(env["SHPC_STORE"])


def test_log_groups_have_retention(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "functions")
    groups = _resources(t, "AWS::Logs::LogGroup")
    assert len(groups) == 3
    assert all(g["Properties"]["RetentionInDays"] == 14 for g in groups.values())


def _statements(t: Template) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for logical, policy in _resources(t, "AWS::IAM::Policy").items():
        out[logical] = policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_function_iam_is_least_privilege(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "functions")
    t.resource_count_is("AWS::IAM::Role", 3)
    for role in _resources(t, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]  # no AWS-managed blanket policy
    by_role: dict[str, set[str]] = {}
    for logical, statements in _statements(t).items():
        actions: set[str] = set()
        for s in statements:
            assert s["Effect"] == "Allow"
            for a in _as_list(s["Action"]):
                assert "*" not in a, f"wildcard action {a} in {logical}"
                actions.add(a)
            for r in _as_list(s["Resource"]):
                assert r != "*", f"wildcard resource in {logical}"
                text = json.dumps(r)
                if "s3" in " ".join(_as_list(s["Action"])) and text.endswith('*"]]}'):
                    # object wildcards only under the allowed prefixes
                    assert any(
                        f"/{p}/*" in text for p in (aws.DATASET_PREFIX, aws.MODELS_PREFIX)
                    ), text
        by_role[logical.split("Role")[0].lower()] = actions
    assert "s3:PutObject" in by_role["train"]
    assert "s3:PutObject" not in by_role["classify"]
    assert "s3:PutObject" not in by_role["dataproc"]


def test_function_outputs(cdk_app: dict[str, Any]) -> None:
    outputs = _t(cdk_app, "functions").to_json()["Outputs"]
    for w in aws.WORKLOADS:
        assert aws.function_output_key(w) in outputs
    assert outputs[aws.OUT_ARCHITECTURE]["Value"] == "x86_64"


# -- comparison stack -------------------------------------------------------------------------
def test_instance_type_imdsv2_and_encrypted_root(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "comparison")
    t.has_resource_properties("AWS::EC2::Instance", {"InstanceType": "t3.xlarge"})
    t.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "required"}}},
    )
    t.has_resource_properties(
        "AWS::EC2::Instance",
        {
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": Match.object_like({"Encrypted": True})}
            ]
        },
    )
    props = next(iter(_resources(t, "AWS::EC2::Instance").values()))["Properties"]
    assert "KeyName" not in props  # no SSH key: SSM only


def test_no_inbound_rules(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "comparison")
    t.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)
    for sg in _resources(t, "AWS::EC2::SecurityGroup").values():
        assert not sg["Properties"].get("SecurityGroupIngress")
        for rule in sg["Properties"].get("SecurityGroupEgress", []):
            assert rule["IpProtocol"] == "tcp"
            assert (rule["FromPort"], rule["ToPort"]) == (443, 443)
    assert "0.0.0.0/0" not in json.dumps(
        [
            sg["Properties"].get("SecurityGroupIngress")
            for sg in t.find_resources("AWS::EC2::SecurityGroup").values()
        ]
    )


def test_instance_role_ssm_and_bucket_prefixes_only(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "comparison")
    role = next(iter(_resources(t, "AWS::IAM::Role").values()))
    assert "AmazonSSMManagedInstanceCore" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    for statements in _statements(t).values():
        for s in statements:
            for a in _as_list(s["Action"]):
                assert "*" not in a
            for r in _as_list(s["Resource"]):
                assert r != "*"


def test_user_data_installs_the_project(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app, "comparison")
    lt = json.dumps(t.to_json())
    assert "python3.11 -m venv" in lt
    assert "[train,aws]" in lt


def test_comparison_outputs(cdk_app: dict[str, Any]) -> None:
    outputs = _t(cdk_app, "comparison").to_json()["Outputs"]
    assert {aws.OUT_INSTANCE_ID, aws.OUT_INSTANCE_TYPE, aws.OUT_RUNNER_COMMAND} <= set(outputs)
    assert outputs[aws.OUT_INSTANCE_TYPE]["Value"] == "t3.xlarge"


# -- every stack ------------------------------------------------------------------------------
TAGGED_TYPES = (
    "AWS::S3::Bucket",
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::EC2::Instance",
    "AWS::EC2::VPC",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::Subnet",
)


@pytest.mark.parametrize("stack", ["data", "functions", "comparison"])
def test_project_tag_on_every_taggable_resource(cdk_app: dict[str, Any], stack: str) -> None:
    resources = _t(cdk_app, stack).to_json()["Resources"]
    checked = 0
    for logical, res in resources.items():
        if res["Type"] in TAGGED_TYPES:
            tags = res["Properties"].get("Tags", [])
            assert {"Key": aws.PROJECT_TAG_KEY, "Value": aws.PROJECT_TAG_VALUE} in tags, logical
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("stack", ["data", "functions", "comparison"])
def test_no_hard_coded_account_or_region(cdk_app: dict[str, Any], stack: str) -> None:
    text = json.dumps(_t(cdk_app, stack).to_json())
    import re

    assert not re.search(r"\b\d{12}\b", text), "an account id is hard-coded"
    for region in ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1"):
        assert region not in text


def test_instance_paths_agree_between_bootstrap_stack_and_target() -> None:
    """The user data, the runner command output and the ec2 target name the same files."""
    from serverless_hpc.targets import ec2 as ec2_target
    from stacks import comparison
    from stacks.config import REPO_ROOT

    bootstrap = (REPO_ROOT / "ec2" / "bootstrap.sh").read_text()
    assert f"SHPC_HOME={comparison.SHPC_HOME}\n" in bootstrap
    assert f"{comparison.SHPC_HOME}/READY" == ec2_target.READY_FILE
    assert 'touch "$SHPC_HOME/READY"' in bootstrap
    python, runner = comparison.RUNNER_COMMAND.split()
    assert python == f"{comparison.SHPC_HOME}/venv/bin/python"
    assert runner == f"{comparison.SHPC_HOME}/src/ec2/runner.py"
    assert (REPO_ROOT / "ec2" / "runner.py").is_file()


def test_arm64_switch_sets_architecture_and_output() -> None:
    import aws_cdk as cdk

    from stacks.config import AppConfig
    from stacks.data import BucketRef
    from stacks.functions import FunctionsStack

    stack = FunctionsStack(
        cdk.App(),
        "Arm",
        config=AppConfig(architecture="arm64"),
        dataset=BucketRef("X-DatasetBucketArn", "X-DatasetBucketName"),
        results=BucketRef("X-ResultsBucketArn", "X-ResultsBucketName"),
    )
    t = Template.from_stack(stack)
    for fn in t.find_resources("AWS::Lambda::Function").values():
        assert fn["Properties"]["Architectures"] == ["arm64"]
    assert t.to_json()["Outputs"][aws.OUT_ARCHITECTURE]["Value"] == "arm64"
