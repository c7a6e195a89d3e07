"""apply / destroy / status and the limit checks, against the controller test double."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import load_credentials
from serverless_hpc.workloads.spec import WorkloadSpec
from tests.doubles.openwhisk_controller import ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

IMAGES = {"lean": "registry.example/lean:1", "train": "registry.example/train:1"}


def _client() -> OpenWhiskClient:
    return OpenWhiskClient(load_credentials(), backoff_base_s=0.01, backoff_cap_s=0.05)


def _cfg(**kw: object) -> deploy.ProjectConfig:
    base: dict[str, object] = {"workloads": ("classify", "dataproc"), "images": IMAGES}
    base.update(kw)
    return deploy.ProjectConfig(**base)  # type: ignore[arg-type]


def _writes(controller: ControllerDouble) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in controller.calls if m in ("PUT", "POST", "DELETE")]


def test_apply_creates_package_and_annotated_actions(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN an empty namespace WHEN the project is applied
    report = deploy.apply(_client(), _cfg())
    # THEN one package and one blackbox action per workload exist, marked managed-by,
    # with the adapter as code and the configured limits
    assert report.applied == ["serverless-hpc/classify", "serverless-hpc/dataproc"]
    action = controller.actions["serverless-hpc/classify"]
    assert action["exec"]["kind"] == "blackbox"
    assert action["exec"]["image"] == IMAGES["lean"]
    assert "def main(args" in action["exec"]["code"]
    assert action["limits"]["memory"] == 512
    assert {"key": "managed-by", "value": "serverless-hpc"} in action["annotations"]
    assert {"key": "managed-by", "value": "serverless-hpc"} in controller.packages[
        "serverless-hpc"
    ]["annotations"]


def test_apply_is_idempotent_with_overwrite(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN an applied project WHEN it is applied again
    deploy.apply(_client(), _cfg())
    deploy.apply(_client(), _cfg())
    # THEN every PUT said overwrite=true and the entities were updated, not duplicated
    puts = [q for m, _, q in controller.calls if m == "PUT"]
    assert puts and all(q.get("overwrite") == "true" for q in puts)
    assert controller.actions["serverless-hpc/dataproc"]["version"] == "0.0.2"
    assert len(controller.actions) == 2


def test_train_over_default_memory_cap_fails_before_sending(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN OpenWhisk's default 512 MB maximum and train, which runs in no less than 2048 MB
    # WHEN the whole project is applied
    with pytest.raises(deploy.LimitError) as err:
        deploy.apply(_client(), _cfg(workloads=()))
    # THEN the message says what the operator must raise, and nothing was written
    text = str(err.value)
    assert "serverless-hpc/train: memory 2048 MB exceeds the maximum 512 MB" in text
    assert "limit_action_memory_max=2048m" in text
    assert "train needs at least 2048 MB" in text
    assert "timeout 900000 ms exceeds the maximum 300000" in text
    assert _writes(controller) == []


def test_older_controller_limits_fall_back_to_documented_defaults(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN a controller whose limits API reports only the rate limits
    controller.limits = {"concurrentInvocations": 30, "invocationsPerMinute": 60}
    # WHEN train (2048 MB) is applied
    with pytest.raises(deploy.LimitError, match="documented default"):
        deploy.apply(_client(), _cfg(workloads=("train",)))
    # THEN nothing was written
    assert _writes(controller) == []


def test_raised_namespace_limits_admit_train(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN an operator who raised memory and timeout maxima
    controller.limits.update(maxActionMemory=4096, maxActionTimeout=900_000)
    # WHEN train is applied THEN it is created with its spec's memory and timeout
    deploy.apply(_client(), _cfg(workloads=("train",)))
    assert controller.actions["serverless-hpc/train"]["limits"]["memory"] == 4096
    assert controller.actions["serverless-hpc/train"]["limits"]["timeout"] == 900_000
    assert controller.actions["serverless-hpc/train"]["exec"]["image"] == IMAGES["train"]


def _spec(**kw: object) -> deploy.ActionSpec:
    base: dict[str, object] = {
        "package": "p",
        "workload": "classify",
        "image": "i",
        "code": "x",
        "memory_mb": 256,
        "timeout_ms": 1000,
        "logs_mb": 10,
        "annotations": (),
        "parameters": (),
    }
    base.update(kw)
    return deploy.ActionSpec(**base)  # type: ignore[arg-type]


def test_code_over_48_mb_is_rejected() -> None:
    # GIVEN an action whose code is one byte over 48 MB
    spec = _spec(code="x" * (deploy.CODE_MAX_BYTES + 1))
    # WHEN checked against generous limits THEN the documented code cap still applies
    limits = deploy.NamespaceLimits.from_api({"maxActionMemory": 8192})
    with pytest.raises(deploy.LimitError, match="48 MB"):
        deploy.check_limits([spec], limits)


def test_parameters_over_the_cap_are_rejected() -> None:
    # GIVEN bound parameters over the namespace's (smaller) parameter size
    spec = _spec(parameters=(("blob", "y" * 2048),))
    limits = deploy.NamespaceLimits.from_api({"maxParameterSize": "1 KB"})
    # WHEN checked THEN LimitError naming the parameter cap
    with pytest.raises(deploy.LimitError, match="bound parameters"):
        deploy.check_limits([spec], limits)


def test_limits_within_range_pass() -> None:
    # GIVEN a spec inside every limit WHEN checked THEN no error
    deploy.check_limits([_spec()], deploy.NamespaceLimits.from_api({}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576 B", 1048576), ("512 KB", 524288), ("1 MB", 1048576), (2048, 2048)],
)
def test_byte_sizes_parse(text: object, expected: int) -> None:
    # GIVEN an OpenWhisk ByteSize WHEN parsed THEN bytes
    assert deploy.parse_byte_size(text) == expected


def test_missing_image_is_a_clear_error(wskprops: Path) -> None:
    # GIVEN no image configured WHEN specs are built THEN the error says how to provide one
    with pytest.raises(deploy.DeployError, match="SHPC_OW_IMAGE_LEAN"):
        deploy.build_specs(_cfg(images={}), env={})


def test_apply_refuses_a_package_it_does_not_manage(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN a package of the same name created by someone else
    _client().put_package("serverless-hpc", {"annotations": []}, overwrite=False)
    # WHEN applying THEN DeployError and the package is untouched
    with pytest.raises(deploy.DeployError, match="not managed"):
        deploy.apply(_client(), _cfg())
    assert controller.packages["serverless-hpc"]["version"] == "0.0.1"


def test_destroy_removes_only_managed_entities(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN the applied project plus a foreign action inside its package
    client = _client()
    deploy.apply(client, _cfg())
    client.put_action(
        "serverless-hpc/foreign", {"exec": {"kind": "blackbox", "image": "x"}}, overwrite=False
    )
    # WHEN destroyed
    report = deploy.destroy(client, project="serverless-hpc")
    # THEN our actions are gone, the foreign one and therefore the package are kept
    assert sorted(report.deleted) == ["serverless-hpc/classify", "serverless-hpc/dataproc"]
    assert "serverless-hpc/foreign" in report.kept
    assert list(controller.actions) == ["serverless-hpc/foreign"]
    assert "serverless-hpc" in controller.packages


def test_destroy_deletes_actions_then_the_package(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN the applied project WHEN destroyed
    client = _client()
    deploy.apply(client, _cfg())
    report = deploy.destroy(client, project="serverless-hpc")
    # THEN nothing is left, and the package went last (the controller refuses it earlier)
    assert report.deleted[-1] == "serverless-hpc"
    assert controller.actions == {} and controller.packages == {}
    # AND destroying again is a no-op
    assert deploy.destroy(client, project="serverless-hpc").deleted == []


def test_status_reports_what_exists(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN nothing, then the applied project
    client = _client()
    assert deploy.status(client, project="serverless-hpc")["exists"] is False
    deploy.apply(client, _cfg(memory_mb={"dataproc": 256}))
    # WHEN status is asked THEN it lists each action with its limits and ownership
    state = deploy.status(client, project="serverless-hpc")
    assert state["exists"] and state["managed"]
    by_name = {a["name"]: a for a in state["actions"]}
    assert by_name["serverless-hpc/dataproc"]["memory_mb"] == 256
    assert by_name["serverless-hpc/classify"]["managed"] is True


def test_unknown_workload_and_bad_names_are_rejected() -> None:
    # GIVEN invalid configuration WHEN constructing THEN DeployError
    with pytest.raises(deploy.DeployError, match="unknown workload"):
        deploy.ProjectConfig(workloads=("mine",))
    with pytest.raises(deploy.DeployError, match="not a valid"):
        deploy.ProjectConfig(project="bad/name")


def test_log_limit_is_fitted_to_the_namespace(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN a namespace that allows no activation logs (maxActionLogs 0)
    controller.limits["maxActionLogs"] = 0
    # WHEN applied THEN the actions are created with logs 0 instead of failing
    deploy.apply(_client(), _cfg())
    assert controller.actions["serverless-hpc/classify"]["limits"]["logs"] == 0


def test_memory_override_for_unknown_workload_is_rejected() -> None:
    # GIVEN a --memory for a workload that does not exist WHEN configured THEN DeployError
    with pytest.raises(deploy.DeployError, match="--memory workload"):
        deploy.ProjectConfig(memory_mb={"trian": 1024})


def test_a_copied_workload_package_becomes_an_action_with_no_other_edit(
    controller: ControllerDouble,
    wskprops: Path,
    copy_workload: Callable[[str, str], WorkloadSpec],
) -> None:
    # GIVEN a copy of the dataproc package under a new name, and a namespace that admits
    # every workload's spec memory and time
    spec = copy_workload("dataproc", "dataproc2")
    controller.limits.update(maxActionMemory=4096, maxActionTimeout=900_000)
    # WHEN the project is applied with the defaults (every workload)
    report = deploy.apply(_client(), deploy.ProjectConfig(images=IMAGES))
    # THEN the copy is an action like any other, sized and imaged by its spec
    assert "serverless-hpc/dataproc2" in report.applied
    action = controller.actions["serverless-hpc/dataproc2"]
    assert action["exec"]["image"] == IMAGES[spec.image.value]
    assert action["limits"]["memory"] == spec.memory_mb
    assert action["limits"]["timeout"] == spec.timeout_s * 1000
    assert {"key": "workload", "value": "dataproc2"} in action["annotations"]


def test_default_memory_is_fitted_to_the_namespace_but_not_below_the_spec_minimum(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN a namespace allowing 1024 MB, below classify's spec (2048) and above its minimum
    controller.limits.update(maxActionMemory=1024)
    # WHEN applied with the defaults THEN classify gets the namespace's maximum
    deploy.apply(_client(), _cfg(workloads=("classify",)))
    assert controller.actions["serverless-hpc/classify"]["limits"]["memory"] == 1024
    # AND an explicit --memory is never fitted: over the maximum it is refused
    with pytest.raises(deploy.LimitError, match="smaller --memory"):
        deploy.apply(_client(), _cfg(workloads=("classify",), memory_mb={"classify": 2048}))
