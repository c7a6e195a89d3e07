"""The Pulumi program under mocks, and its dynamic provider's CRUD against the double."""

from __future__ import annotations

import base64
import runpy
from pathlib import Path
from typing import Any

import pytest

pulumi = pytest.importorskip("pulumi", reason="needs the 'pulumi' extra (pip install '.[pulumi]')")

from serverless_hpc.openwhisk import deploy  # noqa: E402
from serverless_hpc.openwhisk.client import ConflictError  # noqa: E402
from serverless_hpc.openwhisk.pulumi_provider import (  # noqa: E402
    OpenWhiskProvider,
    spec_from_body,
)
from tests.doubles.openwhisk_controller import SECRET, ControllerDouble  # noqa: E402

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

PROGRAM = Path(__file__).resolve().parents[2] / "openwhisk" / "__main__.py"
PROJECT = "serverless-hpc-openwhisk"


class Mocks(pulumi.runtime.Mocks):  # type: ignore[misc]
    """Records every registered resource and echoes its inputs as outputs."""

    def __init__(self) -> None:
        self.resources: list[Any] = []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: Any) -> dict[str, Any]:
        return {}


def test_program_declares_one_package_and_one_action_per_workload(
    ow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN mocks and a stack configured for classify and dataproc
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {
            f"{PROJECT}:imageLean": "registry.example/lean:1",
            f"{PROJECT}:workloads": "classify,dataproc",
            f"{PROJECT}:memoryMb": '{"dataproc": 256}',
        }
    )

    @pulumi.runtime.test  # type: ignore[misc]
    def run() -> None:
        runpy.run_path(str(PROGRAM), run_name="__pulumi_program__")

    # WHEN the program runs
    run()
    # THEN it registered the package and two actions with the bodies apply would send
    inputs = {r.name: r.inputs for r in mocks.resources}
    assert sorted(inputs) == ["classify", "dataproc", "package"]
    assert inputs["package"]["kind"] == "package"
    dataproc = inputs["dataproc"]
    assert dataproc["name"] == "serverless-hpc/dataproc"
    assert dataproc["body"]["limits"]["memory"] == 256
    assert dataproc["body"]["exec"]["image"] == "registry.example/lean:1"
    assert deploy.is_managed(dataproc["body"], "serverless-hpc")
    # AND the pickled provider in the inputs holds no credentials
    for args in mocks.resources:
        blob = args.inputs["__provider"]
        blob = blob["value"] if isinstance(blob, dict) else blob  # a secret-wrapped value
        pickled = base64.b64decode(blob)
        assert b"OpenWhiskProvider" in pickled
        assert SECRET.encode() not in pickled


@pytest.fixture
def provider(controller: ControllerDouble, wskprops: Path) -> OpenWhiskProvider:
    """A provider whose methods find the double through ~/.wskprops."""
    return OpenWhiskProvider()


def _action_props(memory: int = 256) -> dict[str, Any]:
    cfg = deploy.ProjectConfig(
        workloads=("dataproc",), images={"lean": "img:1"}, memory_mb={"dataproc": memory}
    )
    spec = deploy.build_specs(cfg)[0]
    return {
        "kind": "action",
        "name": spec.qualified_name,
        "body": spec.body(),
        "project": cfg.project,
    }


def _package_props() -> dict[str, Any]:
    cfg = deploy.ProjectConfig()
    return {
        "kind": "package",
        "name": cfg.package_name,
        "body": deploy.package_body(cfg),
        "project": cfg.project,
    }


def test_provider_crud_against_the_double(
    provider: OpenWhiskProvider, controller: ControllerDouble
) -> None:
    # GIVEN the package and an action created through the provider
    pkg = provider.create(_package_props())
    created = provider.create(_action_props())
    assert (pkg.id, created.id) == ("serverless-hpc", "serverless-hpc/dataproc")
    assert created.outs["version"] == "0.0.1"
    # WHEN read, diffed, updated and deleted
    assert provider.read(created.id, created.outs).outs["version"] == "0.0.1"
    diff = provider.diff(created.id, created.outs, _action_props(memory=384))
    assert diff.changes and not diff.replaces
    updated = provider.update(created.id, created.outs, _action_props(memory=384))
    # THEN the controller saw each step
    assert updated.outs["version"] == "0.0.2"
    assert controller.actions["serverless-hpc/dataproc"]["limits"]["memory"] == 384
    provider.delete(created.id, updated.outs)
    provider.delete(pkg.id, pkg.outs)
    assert controller.actions == {} and controller.packages == {}
    # AND reading a deleted entity reports it gone
    assert provider.read(created.id, updated.outs).id is None


def test_provider_create_does_not_adopt_an_existing_entity(provider: OpenWhiskProvider) -> None:
    # GIVEN an existing package WHEN the provider creates it again THEN 409 surfaces
    provider.create(_package_props())
    with pytest.raises(ConflictError):
        provider.create(_package_props())


def test_provider_checks_limits_before_sending(
    provider: OpenWhiskProvider, controller: ControllerDouble
) -> None:
    # GIVEN the package and an action over the namespace's 512 MB maximum
    provider.create(_package_props())
    # WHEN created THEN the limit check stops it before any action PUT
    with pytest.raises(deploy.LimitError, match="exceeds the maximum 512 MB"):
        provider.create(_action_props(memory=1024))
    assert controller.actions == {}


def test_provider_holds_no_state_and_check_requires_the_annotation() -> None:
    # GIVEN a provider WHEN inspected THEN it carries no attributes (nothing to pickle)
    provider = OpenWhiskProvider()
    assert vars(provider) == {}
    # AND check rejects a body without the project's annotation or an unknown kind
    bad = {"kind": "trigger", "name": "x", "body": {"annotations": []}, "project": "p"}
    assert {f.property for f in provider.check({}, bad).failures} == {"kind", "body"}


def test_spec_from_body_round_trips() -> None:
    # GIVEN an action body built by deploy WHEN turned back into a spec THEN limits match
    props = _action_props(memory=300)
    spec = spec_from_body(props["name"], props["body"])
    # the time limit is the dataproc spec's 120 s
    assert (spec.memory_mb, spec.timeout_ms, spec.workload) == (300, 120_000, "dataproc")
