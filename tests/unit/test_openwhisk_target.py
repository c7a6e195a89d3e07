"""The openwhisk target: activation records to outcomes, and failures as envelopes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc.contract import error_response, success_response
from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import load_credentials
from serverless_hpc.targets import create
from serverless_hpc.targets.base import TargetSettings, TargetUnavailable
from serverless_hpc.targets.openwhisk import OpenWhiskTarget, outcome_from_activation
from tests.doubles.openwhisk_controller import ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]


def _record(*, success: bool, result: Any, status: str = "success", **ann: Any) -> dict[str, Any]:
    annotations = [{"key": "limits", "value": {"memory": 512, "timeout": 60000}}]
    annotations += [{"key": k, "value": v} for k, v in ann.items()]
    return {
        "activationId": "a1",
        "duration": 250,
        "response": {"status": status, "success": success, "result": result},
        "annotations": annotations,
    }


def _ok() -> dict[str, Any]:
    return success_response(
        workload="dataproc",
        result={"n": 1},
        timings={"load_ms": 1.0, "compute_ms": 2.0},
        cold_start=True,
        runtime={"platform": "openwhisk", "max_rss_mb": 80.5},
    )


def test_cold_activation_reports_init_wait_and_handler_duration() -> None:
    # GIVEN a successful activation with initTime 200 (its duration 250 includes the init)
    record = _record(success=True, result=_ok(), initTime=200, waitTime=30)
    # WHEN it becomes an outcome
    out = outcome_from_activation(record)
    # THEN it is a cold, successful invocation with the platform's figures
    assert out.ok and out.cold
    assert (out.init_ms, out.duration_ms) == (200.0, 50.0)
    assert out.extra == {"wait_ms": 30.0, "activation_ms": 250.0}
    assert out.breakdown["queue_ms"] == 30.0  # a cold start's queue is one of its phases
    assert (out.memory_mb, out.max_rss_mb, out.billed_ms, out.cost_usd) == (512, 80.5, None, None)


def test_warm_activation_has_no_init() -> None:
    # GIVEN an activation without initTime WHEN mapped THEN warm, full duration
    out = outcome_from_activation(_record(success=True, result=_ok(), waitTime=2))
    assert (out.cold, out.init_ms, out.duration_ms) == (False, None, 250.0)


def test_application_error_carries_the_contract_envelope() -> None:
    # GIVEN the adapter's {"error": <envelope>} (an application error)
    envelope = error_response("InvalidRequest", "params.end: bad")
    record = _record(success=False, result={"error": envelope}, status="application error")
    # WHEN mapped THEN the outcome's response is that envelope
    assert outcome_from_activation(record).response == envelope


def test_success_is_judged_by_response_success_not_by_the_result() -> None:
    # GIVEN a record marked unsuccessful whose result nevertheless looks like a success
    record = _record(success=False, result=_ok(), status="action developer error")
    # WHEN mapped THEN it is a failure (a platform error), not a success
    out = outcome_from_activation(record)
    assert not out.ok
    assert out.response["error"]["type"] == "PlatformError"


def test_success_with_a_non_contract_result_is_a_platform_error() -> None:
    # GIVEN a successful activation whose result is not a contract envelope
    out = outcome_from_activation(_record(success=True, result={"hello": "world"}))
    # WHEN mapped THEN PlatformError naming the problem
    assert out.response["error"]["type"] == "PlatformError"
    assert "not a contract response" in out.response["error"]["message"]


@pytest.mark.parametrize(
    ("result", "ann", "expected"),
    [
        (
            {"error": "The action exceeded its time limits of 100 milliseconds."},
            {"timeout": True},
            "Timeout",
        ),
        ({"error": "The action exhausted its memory and was aborted."}, {}, "OutOfMemory"),
        ({"error": "Failed to provision resources to run the action."}, {}, "PlatformError"),
        ({"error": {"unrelated": 1}}, {}, "PlatformError"),
    ],
)
def test_platform_failures_map_to_contract_types(
    result: dict[str, Any], ann: dict[str, Any], expected: str
) -> None:
    # GIVEN a failed activation of a given kind WHEN mapped THEN the matching error type
    record = _record(success=False, result=result, status="action developer error", **ann)
    assert outcome_from_activation(record).response["error"]["type"] == expected


def test_no_credentials_make_the_target_unavailable(ow_env: Path) -> None:
    # GIVEN no wsk configuration WHEN the target is created THEN TargetUnavailable
    with pytest.raises(TargetUnavailable, match="APIHOST"):
        create("openwhisk", TargetSettings())


def test_unknown_target_option_is_rejected(wskprops: Path) -> None:
    # GIVEN a misspelt option WHEN the target is created THEN TargetUnavailable naming it
    with pytest.raises(TargetUnavailable, match="projekt"):
        OpenWhiskTarget(TargetSettings(extra={"openwhisk.projekt": "x"}))


def test_open_without_apply_says_to_apply(wskprops: Path) -> None:
    # GIVEN credentials but nothing applied WHEN the target opens THEN it says what to run
    with pytest.raises(TargetUnavailable, match="shpc ow apply"):
        OpenWhiskTarget(TargetSettings()).open()


@pytest.fixture
def applied(controller: ControllerDouble, wskprops: Path) -> ControllerDouble:
    """The project's classify and dataproc actions applied on the double."""
    client = OpenWhiskClient(load_credentials())
    cfg = deploy.ProjectConfig(workloads=("classify", "dataproc"), images={"lean": "img:1"})
    deploy.apply(client, cfg)
    return controller


def test_workload_without_action_is_not_found(applied: ControllerDouble) -> None:
    # GIVEN only classify and dataproc applied WHEN train is invoked THEN NotFound, no call
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke({"workload": "train", "params": {}}, timeout_s=5)
    assert out.response["error"]["type"] == "NotFound"
    assert not any(m == "POST" for m, _, _ in applied.calls)


def test_request_over_the_payload_cap_is_rejected_locally(applied: ControllerDouble) -> None:
    # GIVEN a request over 1 MB WHEN invoked THEN InvalidRequest before anything is sent
    with OpenWhiskTarget(TargetSettings()) as target:
        big = {"workload": "dataproc", "params": {"pad": "x" * (1024 * 1024)}}
        out = target.invoke(big, timeout_s=5)
    assert out.response["error"]["type"] == "InvalidRequest"
    assert not any(m == "POST" for m, _, _ in applied.calls)


def test_platform_5xx_on_invoke_is_a_platform_error_envelope(applied: ControllerDouble) -> None:
    # GIVEN a controller answering 503 to the next invocation
    applied.inject("POST", r"/actions/", 503)
    # WHEN invoked THEN the target returns (not raises) a PlatformError envelope
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke({"workload": "dataproc", "params": {}}, timeout_s=5)
    assert out.response["error"]["type"] == "PlatformError"
    assert "503" in out.response["error"]["message"]


def test_429_until_the_deadline_is_a_throttled_envelope(applied: ControllerDouble) -> None:
    # GIVEN a controller answering 429 to every invocation for longer than the deadline
    applied.inject("POST", r"/actions/", 429, times=1000)
    # WHEN invoked with a short timeout THEN the target gives up in time, as Throttled
    t0 = time.monotonic()
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke({"workload": "dataproc", "params": {}}, timeout_s=1.0)
    assert out.response["error"]["type"] == "Throttled"
    assert time.monotonic() - t0 < 5.0


def test_max_parallel_is_capped_by_the_namespace(applied: ControllerDouble) -> None:
    # GIVEN a namespace admitting 3 concurrent invocations
    applied.limits["concurrentInvocations"] = 3
    # WHEN the target opens THEN it keeps at most 3 in flight, and describes no secret
    with OpenWhiskTarget(TargetSettings()) as target:
        assert target.max_parallel == 3
        described = target.describe()
    assert described["actions_memory_mb"] == {"classify": 512, "dataproc": 512}
    assert applied.auth.split(":")[1] not in repr(described)


def test_config_file_option_points_at_another_wskprops(
    controller: ControllerDouble, ow_env: Path, tmp_path: Path
) -> None:
    # GIVEN no ~/.wskprops, but a properties file elsewhere
    props = controller.write_wskprops(tmp_path / "elsewhere.props")
    # WHEN the target is created with config_file THEN it uses that endpoint
    target = OpenWhiskTarget(TargetSettings(extra={"config_file": str(props)}))
    assert target.credentials.apihost == controller.apihost


@pytest.mark.parametrize(
    ("store_uri", "expected"),
    [("s3://ow-results/shpc", "s3://ow-results/shpc"), ("/srv/models", None), (None, None)],
)
def test_scratch_store_is_the_bound_store_when_the_driver_can_reach_it(
    controller: ControllerDouble,
    wskprops: Path,
    store_uri: str | None,
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the train action applied with a model store bound (an S3 bucket, a path on the
    # invokers, or none: the image's default)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    controller.limits.update(maxActionMemory=4096, maxActionTimeout=900_000)
    client = OpenWhiskClient(load_credentials())
    cfg = deploy.ProjectConfig(workloads=("train",), images={"train": "img:1"}, store_uri=store_uri)
    deploy.apply(client, cfg)
    # WHEN the driver asks where a training's checkpoints are
    with OpenWhiskTarget(TargetSettings()) as target:
        store = target.scratch_store()
    # THEN only an s3:// store is one it opens; the others stay on the platform's side
    assert (store.uri if store is not None else None) == expected
