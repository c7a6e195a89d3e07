"""Memory as a plan dimension: the plan, the driver's calls, and each target's update.

The Lambda update runs against botocore's ``Stubber`` (a test double of the Lambda API: the
real client, canned responses, every request checked against the API model); the OpenWhisk
update against the controller double in ``tests/doubles``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import WaiterError
from botocore.stub import Stubber

from serverless_hpc import targets, workloads
from serverless_hpc.cli import build_parser
from serverless_hpc.driver import BenchConfig, BenchError, count_invocations, plan, run
from serverless_hpc.invocation import Outcome
from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import load_credentials
from serverless_hpc.rundir import read_records
from serverless_hpc.targets.aws_lambda import LambdaTarget
from serverless_hpc.targets.base import Target, TargetSettings, TargetUnavailable
from serverless_hpc.targets.openwhisk import OpenWhiskTarget
from tests.doubles.clock import FakeClock
from tests.doubles.openwhisk_controller import ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

SIZES = (512, 1024, 1769)


def _cfg(tmp_path: Path, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "out": tmp_path / "run",
        "targets": ("memory-fake",),
        "workloads": ("sleep",),
        "repeats": 2,
        "modes": ("natural",),
        "memory_mb": SIZES,
        "run_id": "t",
    }
    return BenchConfig(**{**base, **kw})


# -- the plan -------------------------------------------------------------------------------


def test_every_batch_runs_at_each_size_sizes_outermost(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, targets=("local-faas",))
    batches = list(plan(cfg, "memory-fake", supports_memory=True))
    assert [b.memory_mb for b in batches] == [512, 512, 1024, 1024, 1769, 1769]
    assert [b.repeat for b in batches] == [0, 1] * 3
    total = count_invocations(cfg, lambda _: False, lambda _: True)
    assert total == sum(len(b.requests) for b in batches) == 6


def test_a_target_that_cannot_set_memory_runs_the_plan_once(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, targets=("standalone",))
    batches = list(plan(cfg, "standalone"))
    assert [b.memory_mb for b in batches] == [None, None]
    assert count_invocations(cfg, lambda _: False) == 2


@pytest.mark.parametrize("sizes", [(64,), (512, 512), (20_000,)])
def test_bad_sizes_name_the_option(tmp_path: Path, sizes: tuple[int, ...]) -> None:
    with pytest.raises(BenchError, match="--memory-mb"):
        _cfg(tmp_path, targets=("local-faas",), memory_mb=sizes)


def test_cli_takes_a_list_and_one_value_still_sets_the_setting() -> None:
    args = build_parser().parse_args(["bench", "--memory-mb", "512,1024,1769"])
    assert args.memory_mb == (512, 1024, 1769)
    args = build_parser().parse_args(["bench", "--memory-mb", "1024"])
    assert args.memory_mb == (1024,)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--memory-mb", "lots"])


# -- the driver -----------------------------------------------------------------------------


class MemoryFakeTarget(Target):
    """A test double: records set_memory and invoke calls; the size shows in the outcome."""

    name = "memory-fake"
    supports_memory = True
    fail_at: int | None = None
    refuse_above: int | None = None

    def __init__(self, settings: TargetSettings) -> None:
        super().__init__(settings)
        self.events: list[str] = []
        self.memory: int | None = None

    def check_memory(self, sizes: Any) -> None:
        if self.refuse_above is not None and max(sizes) > self.refuse_above:
            raise TargetUnavailable(f"memory-fake: sizes above {self.refuse_above} MB")

    def set_memory(self, workload: str, memory_mb: int) -> None:
        self.events.append(f"set {memory_mb}")
        if memory_mb == self.fail_at:
            raise RuntimeError("update rejected")
        self.memory = memory_mb

    def invoke(self, request: dict, *, timeout_s: float, force_cold: bool = False) -> Outcome:
        self.events.append("invoke")
        envelope = {
            "ok": True,
            "workload": request["workload"],
            "result": {},
            "cold_start": False,
            "timings": {"load_ms": 0.0, "compute_ms": 1.0},
            "runtime": {},
        }
        return Outcome(response=envelope, cold=False, memory_mb=self.memory, duration_ms=1.0)


class NoMemoryFakeTarget(MemoryFakeTarget):
    """A test double of a target that cannot set memory (like standalone)."""

    name = "no-memory-fake"
    supports_memory = False


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, MemoryFakeTarget]]:
    out: dict[str, MemoryFakeTarget] = {}
    kinds = {"memory-fake": MemoryFakeTarget, "no-memory-fake": NoMemoryFakeTarget}

    def create(name: str, settings: TargetSettings) -> Target:
        out[name] = kinds[name](settings)
        return out[name]

    for name in kinds:
        monkeypatch.setitem(targets.TARGETS, name, "unused:Unused")
    monkeypatch.setattr(targets, "create", create)
    yield out
    MemoryFakeTarget.fail_at = None
    MemoryFakeTarget.refuse_above = None


def test_the_driver_sets_each_size_before_its_batches_and_records_it(
    tmp_path: Path, made: dict[str, MemoryFakeTarget], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(tmp_path, targets=("memory-fake", "no-memory-fake"))
    run(cfg)
    assert made["memory-fake"].events == [
        e for size in SIZES for e in (f"set {size}", "invoke", f"set {size}", "invoke")
    ]
    assert made["no-memory-fake"].events == ["invoke", "invoke"]  # once, never set
    assert "no-memory-fake cannot set memory" in caplog.text
    records = read_records(cfg.out / "records.jsonl")
    fake = [r["memory_mb"] for r in records if r["target"] == "memory-fake"]
    assert sorted(fake) == sorted([*SIZES, *SIZES])
    batches = [json.loads(x) for x in (cfg.out / "batches.jsonl").read_text().splitlines()]
    assert [b["memory_mb"] for b in batches if b["target"] == "memory-fake"] == [
        512,
        512,
        1024,
        1024,
        1769,
        1769,
    ]
    meta = json.loads((cfg.out / "run.json").read_text())
    assert meta["memory_ignored_by"] == ["no-memory-fake"]
    assert meta["config"]["memory_mb"] == list(SIZES)


def test_a_failed_update_fails_that_sizes_batches_and_the_run_goes_on(
    tmp_path: Path, made: dict[str, MemoryFakeTarget]
) -> None:
    MemoryFakeTarget.fail_at = 1024
    result = run(_cfg(tmp_path))
    records = read_records(tmp_path / "run" / "records.jsonl")
    failed = [r for r in records if not r["ok"]]
    assert result.failed == len(failed) == 2
    assert all(r["memory_mb"] == 1024 for r in failed)
    assert all("cannot set the memory to 1024 MB: RuntimeError" in r["error"] for r in failed)
    assert sum(r["ok"] for r in records) == 4


def test_sizes_the_platform_refuses_stop_the_run_before_anything_runs(
    tmp_path: Path, made: dict[str, MemoryFakeTarget]
) -> None:
    MemoryFakeTarget.refuse_above = 1024
    with pytest.raises(BenchError, match="above 1024 MB"):
        run(_cfg(tmp_path))
    assert made["memory-fake"].events == []
    assert not (tmp_path / "run" / "records.jsonl").exists()


# -- Lambda ---------------------------------------------------------------------------------


@pytest.fixture
def lam() -> Iterator[tuple[LambdaTarget, Stubber]]:
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stub:
        clock = FakeClock(now=1000.0)
        extra = {f"function.{w}": f"fn-{w}" for w in workloads.names()}
        target = LambdaTarget(
            TargetSettings(extra={**extra, "architecture": "x86_64"}),
            lambda_client=client,
            sleep=clock.sleep,
            clock=clock,
        )
        target.open()
        yield target, stub
        stub.assert_no_pending_responses()


def _update(stub: Stubber, memory: int, status: str = "Successful") -> None:
    stub.add_response(
        "update_function_configuration",
        {"MemorySize": memory, "LastUpdateStatus": "InProgress"},
        {"FunctionName": "fn-classify", "MemorySize": memory},
    )
    stub.add_response(  # the function_updated_v2 waiter polls GetFunction
        "get_function",
        {"Configuration": {"LastUpdateStatus": status}},
        {"FunctionName": "fn-classify"},
    )


def test_lambda_updates_memory_between_sizes_and_restores_it(
    lam: tuple[LambdaTarget, Stubber],
) -> None:
    target, stub = lam
    stub.add_response(
        "get_function_configuration", {"MemorySize": 2048}, {"FunctionName": "fn-classify"}
    )
    _update(stub, 512)
    _update(stub, 1024)
    _update(stub, 2048)  # the restore
    target.set_memory("classify", 512)
    target.set_memory("classify", 512)  # same size: no call
    target.set_memory("classify", 1024)
    target.close()


def test_lambda_restores_after_a_failed_update(lam: tuple[LambdaTarget, Stubber]) -> None:
    target, stub = lam
    stub.add_response(
        "get_function_configuration", {"MemorySize": 3008}, {"FunctionName": "fn-classify"}
    )
    _update(stub, 512, status="Failed")
    _update(stub, 3008)
    with pytest.raises(WaiterError):
        target.set_memory("classify", 512)
    target.close()  # the driver closes its targets whatever stopped the run


def test_lambda_restores_after_ctrl_c(lam: tuple[LambdaTarget, Stubber]) -> None:
    target, stub = lam
    stub.add_response(
        "get_function_configuration", {"MemorySize": 1769}, {"FunctionName": "fn-classify"}
    )
    _update(stub, 512)
    _update(stub, 1769)
    with pytest.raises(KeyboardInterrupt), target:  # __exit__ is close()
        target.set_memory("classify", 512)
        raise KeyboardInterrupt


def test_lambda_restore_failure_is_logged_with_the_command(
    lam: tuple[LambdaTarget, Stubber], caplog: pytest.LogCaptureFixture
) -> None:
    target, stub = lam
    stub.add_response(
        "get_function_configuration", {"MemorySize": 1769}, {"FunctionName": "fn-classify"}
    )
    _update(stub, 512)
    stub.add_client_error("update_function_configuration", "ResourceConflictException")
    target.set_memory("classify", 512)
    target.close()
    assert "--function-name fn-classify --memory-size 1769" in caplog.text


# -- OpenWhisk ------------------------------------------------------------------------------


@pytest.fixture
def applied(controller: ControllerDouble, wskprops: Path) -> ControllerDouble:
    """The project's classify action applied on the double (512 MB)."""
    client = OpenWhiskClient(load_credentials())
    deploy.apply(client, deploy.ProjectConfig(workloads=("classify",), images={"lean": "img:1"}))
    return controller


def _action_memory(controller: ControllerDouble) -> int:
    client = OpenWhiskClient(load_credentials())
    cfg = deploy.ProjectConfig(workloads=("classify",), images={"lean": "img:1"})
    entity = client.get_action(f"{cfg.project}/classify")
    assert entity is not None
    return int(entity["limits"]["memory"])


def test_openwhisk_updates_the_action_and_restores_it(applied: ControllerDouble) -> None:
    with OpenWhiskTarget(TargetSettings()) as target:
        target.check_memory([128, 256])
        target.set_memory("classify", 256)
        assert _action_memory(applied) == 256
        out = target.invoke({"workload": "classify", "params": {"bad": 1}}, timeout_s=10)
        assert out.memory_mb == 256
    assert _action_memory(applied) == 512


def test_openwhisk_refuses_sizes_outside_the_namespace_limits(applied: ControllerDouble) -> None:
    applied.limits["maxActionMemory"] = 1024
    before = len(applied.calls)
    with (
        OpenWhiskTarget(TargetSettings()) as target,
        pytest.raises(TargetUnavailable, match=r"2048 outside .* 128-1024 MB"),
    ):
        target.check_memory([512, 2048])
    assert [c for c in applied.calls[before:] if c[0] == "PUT"] == []
