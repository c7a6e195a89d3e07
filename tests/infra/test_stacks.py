"""``aws_cdk.assertions`` over the deployment's stack: the properties issue 3 asks of it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template

from serverless_hpc import aws, workloads
from serverless_hpc.workloads.spec import SCRATCH_PREFIX, StoreAccess, WorkloadSpec


def _t(cdk_app: dict[str, Any]) -> Template:
    template: Template = cdk_app["template"]
    return template


def _resources(template: Template, rtype: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(rtype)
    return found


# -- dataset ------------------------------------------------------------------------------------
def test_buckets_block_public_access_encrypt_and_autodelete(cdk_app: dict[str, Any]) -> None:
    # GIVEN the dataset construct with the default context (retain_results=false)
    t = _t(cdk_app)
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
    t = _t(cdk_app)
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
    t = _t(cdk_app)
    t.resource_count_is("Custom::CDKBucketDeployment", 1)
    t.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {"DestinationBucketKeyPrefix": aws.DATASET_PREFIX, "Prune": True},
    )


def test_data_outputs_and_no_exports(cdk_app: dict[str, Any]) -> None:
    # GIVEN the one stack WHEN its outputs are read
    outputs = _t(cdk_app).to_json()["Outputs"]
    # THEN the buckets are published for the driver, and nothing is exported: the
    # constructs are wired by attribute, so no output is pinned by another stack's import
    assert {aws.OUT_DATASET_BUCKET, aws.OUT_RESULTS_BUCKET} <= set(outputs)
    assert all("Export" not in o for o in outputs.values())
    assert "Fn::ImportValue" not in json.dumps(_t(cdk_app).to_json())


def test_retain_results_switch_keeps_the_results_bucket(data_dir: Path) -> None:
    # GIVEN the retain_results context switch
    import aws_cdk as cdk

    from stacks.config import AppConfig
    from stacks.data import Dataset

    config = AppConfig.from_context({"dataset_dir": str(data_dir), "retain_results": "true"}.get)
    stack = cdk.Stack(cdk.App(), "RetainCheck")
    Dataset(stack, "Dataset", dataset_dir=config.dataset_dir, retain_results=config.retain_results)
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    # THEN the results bucket is retained (no auto-delete) and the dataset bucket is not
    policies = sorted(b["DeletionPolicy"] for b in buckets.values())
    assert policies == ["Delete", "Retain"]


# -- workload functions -----------------------------------------------------------------------
def _functions(t: Template) -> dict[str, dict[str, Any]]:
    """Each workload function's properties, by the workload it serves."""
    out = {}
    for fn in _resources(t, "AWS::Lambda::Function").values():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if "SHPC_WORKLOAD" in env:
            out[env["SHPC_WORKLOAD"]] = fn["Properties"]
    return out


def test_one_image_function_per_workload_sized_by_its_spec(cdk_app: dict[str, Any]) -> None:
    fns = _functions(_t(cdk_app))
    assert set(fns) == set(workloads.names())
    for name, props in fns.items():
        spec = workloads.spec(name)
        assert props["PackageType"] == "Image"
        assert props["Architectures"] == ["x86_64"]
        assert "FunctionName" not in props
        assert props["LoggingConfig"]["LogGroup"]  # its own log group
        assert props["MemorySize"] == spec.memory_mb
        assert props["Timeout"] == math.ceil(spec.timeout_s)
    assert fns["train"]["Timeout"] == 900
    assert fns["train"]["MemorySize"] == 4096
    assert fns["classify"]["MemorySize"] == 2048
    assert fns["classify"]["Timeout"] == 60
    assert fns["dataproc"]["Timeout"] == 120


def test_train_image_is_separate_from_the_lean_image(cdk_app: dict[str, Any]) -> None:
    fns = _functions(_t(cdk_app))

    def image(props: dict[str, Any]) -> str:
        return json.dumps(props["Code"]["ImageUri"], sort_keys=True)

    assert image(fns["classify"]) == image(fns["dataproc"])
    assert image(fns["train"]) != image(fns["classify"])
    # one image asset per image kind the specs name
    kinds = {workloads.spec(n).image for n in fns}
    assert len({image(p) for p in fns.values()}) == len(kinds)


def test_function_environment_names_buckets_not_literals(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app)
    buckets = set(_resources(t, "AWS::S3::Bucket"))
    for props in _functions(t).values():
        env = props["Environment"]["Variables"]
        for key in ("SHPC_DATASET_URI", "SHPC_STORE"):
            refs = {
                part["Ref"]
                for part in env[key]["Fn::Join"][1]
                if isinstance(part, dict) and "Ref" in part
            }
            assert refs and refs <= buckets, (key, env[key])


def test_log_groups_have_retention(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app)
    groups = _resources(t, "AWS::Logs::LogGroup")
    assert len(groups) == len(workloads.names())
    assert all(g["Properties"]["RetentionInDays"] == 14 for g in groups.values())


def _statements(t: Template, role: str) -> list[dict[str, Any]]:
    """Every policy statement attached to role ``role`` (a logical id)."""
    out: list[dict[str, Any]] = []
    for policy in _resources(t, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _function_roles(t: Template) -> dict[str, str]:
    """Workload -> the logical id of its function's role."""
    return {w: props["Role"]["Fn::GetAtt"][0] for w, props in _functions(t).items()}


def test_function_iam_is_least_privilege(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app)
    roles = _function_roles(t)
    assert len(set(roles.values())) == len(workloads.names())  # one role per function
    all_roles = _resources(t, "AWS::IAM::Role")
    by_workload: dict[str, set[str]] = {}
    objects: dict[str, set[str]] = {}  # workload -> its object-wildcard resources
    for workload, role in roles.items():
        assert "ManagedPolicyArns" not in all_roles[role]["Properties"]  # no blanket policy
        actions: set[str] = set()
        for s in _statements(t, role):
            assert s["Effect"] == "Allow"
            for a in _as_list(s["Action"]):
                assert "*" not in a, f"wildcard action {a} for {workload}"
                actions.add(a)
            for r in _as_list(s["Resource"]):
                assert r != "*", f"wildcard resource for {workload}"
                text = json.dumps(r)
                if "s3" in " ".join(_as_list(s["Action"])) and text.endswith('*"]]}'):
                    # object wildcards only under the allowed prefixes
                    assert any(
                        f"/{p}/*" in text
                        for p in (aws.DATASET_PREFIX, aws.MODELS_PREFIX, SCRATCH_PREFIX)
                    ), text
                    objects.setdefault(workload, set()).add(text)
        by_workload[workload] = actions
    # the store access each spec declares, and nothing more
    writers = (StoreAccess.WRITE_MODELS, StoreAccess.SCRATCH)
    for workload, actions in by_workload.items():
        store = workloads.spec(workload).store
        assert ("s3:PutObject" in actions) == (store in writers), workload
        assert "s3:DeleteObject" not in actions, workload  # the driver cleans up, not functions
        on_models = any(f"/{aws.MODELS_PREFIX}/*" in o for o in objects.get(workload, ()))
        on_scratch = any(f"/{SCRATCH_PREFIX}/*" in o for o in objects.get(workload, ()))
        models = (StoreAccess.READ_MODELS, StoreAccess.WRITE_MODELS)
        assert on_models == (store in models), workload
        assert on_scratch == (store is StoreAccess.SCRATCH), workload
    for coupled in ("stencil", "kmers", "matmul"):
        assert workloads.spec(coupled).store is StoreAccess.SCRATCH
        assert "s3:PutObject" in by_workload[coupled]
    assert "s3:PutObject" in by_workload["train"]
    assert "s3:PutObject" not in by_workload["classify"]
    assert "s3:PutObject" not in by_workload["dataproc"]


def test_function_outputs(cdk_app: dict[str, Any]) -> None:
    outputs = _t(cdk_app).to_json()["Outputs"]
    for w in workloads.names():
        assert aws.function_output_key(w) in outputs
    assert outputs[aws.OUT_ARCHITECTURE]["Value"] == "x86_64"


# -- comparison instance ----------------------------------------------------------------------
def test_instance_type_imdsv2_and_encrypted_root(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app)
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
    t = _t(cdk_app)
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
    t = _t(cdk_app)
    profile = next(iter(_resources(t, "AWS::IAM::InstanceProfile").values()))
    (ref,) = profile["Properties"]["Roles"]
    role = _resources(t, "AWS::IAM::Role")[ref["Ref"]]
    assert "ec2.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    assert "AmazonSSMManagedInstanceCore" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    statements = _statements(t, ref["Ref"])
    assert statements
    for s in statements:
        for a in _as_list(s["Action"]):
            assert "*" not in a
        for r in _as_list(s["Resource"]):
            assert r != "*"
    # the instance runs coupled jobs through the store too: scratch/ is among its prefixes
    assert "/scratch/*" in json.dumps(statements)


def test_user_data_installs_the_project(cdk_app: dict[str, Any]) -> None:
    t = _t(cdk_app)
    lt = json.dumps(t.to_json())
    assert "python3.11 -m venv" in lt
    assert "[train,aws]" in lt


def test_comparison_outputs(cdk_app: dict[str, Any]) -> None:
    outputs = _t(cdk_app).to_json()["Outputs"]
    assert {aws.OUT_INSTANCE_ID, aws.OUT_INSTANCE_TYPE, aws.OUT_RUNNER_COMMAND} <= set(outputs)
    assert outputs[aws.OUT_INSTANCE_TYPE]["Value"] == "t3.xlarge"


# -- every resource ---------------------------------------------------------------------------
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


def test_project_tag_on_every_taggable_resource(cdk_app: dict[str, Any]) -> None:
    resources = _t(cdk_app).to_json()["Resources"]
    checked = 0
    for logical, res in resources.items():
        if res["Type"] in TAGGED_TYPES:
            tags = res["Properties"].get("Tags", [])
            assert {"Key": aws.PROJECT_TAG_KEY, "Value": aws.PROJECT_TAG_VALUE} in tags, logical
            checked += 1
    assert checked > 0


def test_no_hard_coded_account_or_region(cdk_app: dict[str, Any]) -> None:
    text = json.dumps(_t(cdk_app).to_json())
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


def test_arm64_switch_sets_architecture_and_output(data_dir: Path) -> None:
    import aws_cdk as cdk

    from stacks.benchmark import BenchmarkStack
    from stacks.config import AppConfig

    stack = BenchmarkStack(
        cdk.App(), "Arm", config=AppConfig(architecture="arm64", dataset_dir=data_dir)
    )
    t = Template.from_stack(stack)
    fns = _functions(t)
    assert set(fns) == set(workloads.names())
    for props in fns.values():
        assert props["Architectures"] == ["arm64"]
    assert t.to_json()["Outputs"][aws.OUT_ARCHITECTURE]["Value"] == "arm64"


# -- a new workload is one package --------------------------------------------------------------
def test_a_copied_workload_package_becomes_a_function_with_no_other_edit(
    data_dir: Path, tmp_path: Path, copy_workload: Callable[[str, str], WorkloadSpec]
) -> None:
    import aws_cdk as cdk

    import app as cdk_app_module

    # GIVEN a copy of the dataproc package under a new name
    spec = copy_workload("dataproc", "dataproc2")
    # WHEN the app is synthesized, cdk-nag on (an unacknowledged finding fails synth)
    app = cdk.App(
        outdir=str(tmp_path / "cdk.out"),
        context={"dataset_dir": str(data_dir), "dataproc2_timeout_s": "300"},
    )
    stack = cdk_app_module.build(app)
    app.synth()
    t = Template.from_stack(stack)
    # THEN the copy has its own function, sized by its spec (and the context override)
    fns = _functions(t)
    props = fns["dataproc2"]
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == 300
    # on the image its spec names (the same asset as dataproc's)
    assert props["Code"]["ImageUri"] == fns["dataproc"]["Code"]["ImageUri"]
    # with IAM from its store access: exactly what dataproc's role may do
    roles = _function_roles(t)

    def grants(workload: str) -> set[str]:
        return {a for s in _statements(t, roles[workload]) for a in _as_list(s["Action"])}

    assert grants("dataproc2") == grants("dataproc")
    assert "s3:PutObject" not in grants("dataproc2")
    # and the driver finds it through its output
    assert aws.function_output_key("dataproc2") in t.to_json()["Outputs"]
