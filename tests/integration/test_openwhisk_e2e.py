"""End to end through the controller test double: apply -> bench -> records -> destroy.

The double runs the real adapter (``openwhisk/action.py``) in container subprocesses over
the real Fashion-MNIST files, so these tests exercise every layer except OpenWhisk itself.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serverless_hpc import driver
from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import load_credentials
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.openwhisk import OpenWhiskTarget
from tests.doubles.openwhisk_controller import SECRET, ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

pytestmark = pytest.mark.integration
SLEEPY = "import time\n\ndef main(args):\n    time.sleep(5)\n    return {}\n"
DATAPROC = {"workload": "dataproc", "params": {"split": "test", "start": 0, "end": 200}}


def _client() -> OpenWhiskClient:
    return OpenWhiskClient(load_credentials(), backoff_base_s=0.01, backoff_cap_s=0.1)


@pytest.fixture
def applied(controller: ControllerDouble, wskprops: Path, data_dir: Path) -> ControllerDouble:
    """classify and dataproc applied on the double, as ``shpc ow apply`` does it; the
    double's containers read the real Fashion-MNIST files (skipped when they are absent)."""
    controller.container_env["FASHION_MNIST_DIR"] = str(data_dir)
    cfg = deploy.ProjectConfig(workloads=("classify", "dataproc"), images={"lean": "img:1"})
    deploy.apply(_client(), cfg)
    return controller


def test_bench_apply_invoke_records_destroy(
    applied: ControllerDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the applied project and a benchmark of dataproc, natural and forced-cold
    caplog.set_level(logging.DEBUG)
    cfg = driver.BenchConfig(
        out=tmp_path / "run",
        targets=("openwhisk",),
        workloads=("dataproc",),
        shards=(1, 2),
        repeats=2,
        modes=("natural", "cold"),
        cold_repeats=1,
        params={"dataproc": {"split": "test"}},
        settings=TargetSettings(),
        run_id="ow-e2e",
    )
    # WHEN the driver runs it through the openwhisk target
    result = driver.run(cfg)
    # THEN every invocation succeeded and was recorded
    assert (result.records, result.failed) == (9, 0)
    records = [json.loads(line) for line in (cfg.out / "records.jsonl").read_text().splitlines()]
    assert all(r["ok"] and r["target"] == "openwhisk" for r in records)
    assert all(r["memory_mb"] == 512 and r["duration_ms"] is not None for r in records)
    # AND the first invocation was a cold start with its init time from the activation
    first = records[0]
    assert first["cold"] and first["init_ms"] > 0 and "wait_ms" in first["extra"]
    # AND a repeated single-shard natural invocation was warm, a forced one cold
    natural_1 = [r for r in records if r["mode"] == "natural" and r["shards"] == 1]
    assert [r["cold"] for r in natural_1] == [True, False]
    cold_1 = [r for r in records if r["mode"] == "cold" and r["shards"] == 1]
    assert [r["cold"] for r in cold_1] == [True]
    # AND the map/reduce result is identical whatever the fan-out
    batches = [json.loads(x) for x in (cfg.out / "batches.jsonl").read_text().splitlines()]
    assert len({b["reduced_sha256"] for b in batches}) == 1
    assert all(b["reduced_n"] == 10_000 for b in batches)
    # AND the AUTH key is in no record, batch, run file or log line
    for name in ("records.jsonl", "batches.jsonl", "run.json"):
        assert SECRET not in (cfg.out / name).read_text()
    assert SECRET not in caplog.text
    # WHEN destroyed THEN nothing of the project is left
    deploy.destroy(_client(), project="serverless-hpc")
    assert applied.actions == {} and applied.packages == {}


def test_202_is_followed_by_polling_the_activation(applied: ControllerDouble) -> None:
    # GIVEN a controller whose blocking wait (50 ms) is shorter than a cold start
    applied.blocking_wait_s = 0.05
    # WHEN dataproc is invoked
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke(DATAPROC, timeout_s=30)
    # THEN the result arrived by polling GET /activations/{id}
    assert out.ok and out.cold
    assert out.response["result"]["n"] == 200
    assert any(m == "GET" and "/activations/" in p for m, p, _ in applied.calls)


def test_poll_gives_up_at_the_invocation_timeout(applied: ControllerDouble) -> None:
    # GIVEN an action that takes 5 s and a 50 ms blocking wait
    _client().put_action(
        "serverless-hpc/dataproc",
        {"exec": {"kind": "blackbox", "image": "img:1", "code": SLEEPY}},
        overwrite=True,
    )
    applied.blocking_wait_s = 0.05
    # WHEN invoked with a 1 s timeout
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke(DATAPROC, timeout_s=1.0)
    # THEN a Timeout envelope comes back (bounded), not a hang
    assert out.response["error"]["type"] == "Timeout"
    assert "did not complete within" in out.response["error"]["message"]


def test_action_time_limit_is_reported_as_timeout(applied: ControllerDouble) -> None:
    # GIVEN an action whose 200 ms time limit its run exceeds
    _client().put_action(
        "serverless-hpc/dataproc",
        {
            "exec": {"kind": "blackbox", "image": "img:1", "code": SLEEPY},
            "limits": {"timeout": 200},
        },
        overwrite=True,
    )
    # WHEN invoked THEN the activation's timeout annotation makes it a Timeout envelope
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke(DATAPROC, timeout_s=30)
    assert out.response["error"]["type"] == "Timeout"
    assert "exceeded its time limits of 200 milliseconds" in out.response["error"]["message"]


def test_contract_error_is_an_application_error_not_a_platform_error(
    applied: ControllerDouble,
) -> None:
    # GIVEN a request with an invalid parameter WHEN invoked through OpenWhisk
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke({"workload": "dataproc", "params": {"end": -1}}, timeout_s=30)
    # THEN the caller gets the workload's own InvalidRequest, naming the field
    assert out.response["error"]["type"] == "InvalidRequest"
    assert "params.end" in out.response["error"]["message"]
    # AND the activation is recorded as an application error
    statuses = {a.record["response"]["status"] for a in applied.activations.values() if a.record}
    assert statuses == {"application error"}


def test_throttled_invocation_is_retried_then_succeeds(applied: ControllerDouble) -> None:
    # GIVEN a controller that throttles the next two invocations
    applied.inject("POST", r"/actions/", 429, times=2)
    # WHEN dataproc is invoked THEN it succeeds after backing off
    with OpenWhiskTarget(TargetSettings()) as target:
        out = target.invoke(DATAPROC, timeout_s=30)
    assert out.ok
    assert sum(1 for m, _, _ in applied.calls if m == "POST") == 3


def test_fan_out_never_exceeds_max_parallel(applied: ControllerDouble) -> None:
    # GIVEN a target limited to one invocation in flight
    settings = TargetSettings(extra={"max_parallel": "1"})
    with OpenWhiskTarget(settings) as target, ThreadPoolExecutor(max_workers=4) as pool:
        # WHEN four invocations are submitted at once (as the driver's pool does)
        outs = list(pool.map(lambda _: target.invoke(DATAPROC, timeout_s=30), range(4)))
    # THEN all succeeded, the controller never saw two at once, and containers were reused
    assert all(o.ok for o in outs)
    assert applied.max_in_flight == 1
    assert [o.cold for o in outs].count(True) == 1


def test_forced_cold_retries_a_concurrent_modification_conflict(
    applied: ControllerDouble,
) -> None:
    # GIVEN a warm dataproc container and a controller whose next action update conflicts
    with OpenWhiskTarget(TargetSettings()) as target:
        assert target.invoke(DATAPROC, timeout_s=30).cold
        seen = len(applied.calls)
        applied.inject(
            "PUT", r"/actions/", 409, {"error": "Concurrent modification to resource detected."}
        )
        # WHEN a cold start is forced
        out = target.invoke(DATAPROC, timeout_s=30, force_cold=True)
    # THEN the update was retried, and the invocation ran on a new container
    assert out.ok and out.cold
    puts = [p for m, p, _ in applied.calls[seen:] if m == "PUT"]
    assert puts == ["/api/v1/namespaces/guest/actions/serverless-hpc/dataproc"] * 2
