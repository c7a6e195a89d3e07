"""Nothing the driver changes on a platform stays changed after it dies.

The journal unit by unit (record, clear, leftovers of a dead owner only, a corrupt file), then
the whole story against the OpenWhisk controller test double: a real ``shpc bench`` driver
killed with SIGKILL in the middle of a memory sweep, and the next run putting the action's
memory back before it measures anything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import journal
from tests.faults.conftest import EXIT_DEADLINE_S, run_shpc, shpc_env, start_shpc, wait_for

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

#: A child that journals one change, then dies without clearing it (as kill -9 would).
DIES_AFTER_RECORDING = """
import os, sys
from serverless_hpc import journal
journal.record("openwhisk:test", "sleep", "memory_mb", 512)
print("recorded", flush=True)
os.kill(os.getpid(), 9)
"""


def test_record_then_clear_leaves_nothing(tmp_path: Path) -> None:
    journal.record("lambda:eu-west-1", "fn-a", "memory_mb", 1024)
    journal.record("lambda:eu-west-1", "fn-a", "memory_mb", 512)  # the first original wins
    data = json.loads(journal.journal_path().read_text())
    assert [e["original"] for e in data["entries"]] == [1024]
    # this process is alive: its own entries are no leftovers
    assert journal.leftovers("lambda:eu-west-1") == []
    journal.clear("lambda:eu-west-1", "fn-a", "memory_mb")
    assert not journal.journal_path().exists()


def test_an_entry_of_a_dead_driver_is_a_leftover_and_restored_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a driver process that journalled a change and was killed before restoring it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", DIES_AFTER_RECORDING],
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE_S,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL and "recorded" in done.stdout
    # WHEN a target of that platform opens
    [entry] = journal.leftovers("openwhisk:test")
    assert (entry.resource, entry.original) == ("sleep", 512)
    restored: list[tuple[str, int]] = []
    with caplog.at_level(logging.WARNING, logger="serverless_hpc.journal"):
        journal.restore_leftovers(
            "openwhisk:test", lambda e: restored.append((e.resource, e.original))
        )
    # THEN the setting is put back once, said in the log, and the journal is empty
    assert restored == [("sleep", 512)]
    assert "sleep memory_mb restored to 512" in caplog.text and "died" in caplog.text
    assert journal.leftovers("openwhisk:test") == []
    assert not (journal.state_dir() / journal.OWNERS_DIR / entry.owner).exists()


def test_a_failed_restore_keeps_the_entry(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", DIES_AFTER_RECORDING], env=env, timeout=60, check=False)

    def fail(entry: journal.Entry) -> None:
        raise OSError("controller unreachable")

    with pytest.raises(OSError, match="unreachable"):
        journal.restore_leftovers("openwhisk:test", fail)
    assert len(journal.leftovers("openwhisk:test")) == 1


def test_an_entry_for_a_resource_that_is_gone_is_dropped_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", DIES_AFTER_RECORDING], env=env, timeout=60, check=False)
    with caplog.at_level(logging.WARNING, logger="serverless_hpc.journal"):
        handled = journal.restore_leftovers("openwhisk:test", lambda _e: False)
    assert len(handled) == 1 and "sleep, whose memory_mb" in caplog.text
    assert "no longer exists" in caplog.text and "restored" not in caplog.text
    assert journal.leftovers("openwhisk:test") == []


def test_a_corrupt_journal_is_moved_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = journal.journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="serverless_hpc.journal"):
        journal.record("lambda:x", "fn", "memory_mb", 128)
    assert "was corrupt" in caplog.text
    assert list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert json.loads(path.read_text())["entries"][0]["resource"] == "fn"


def test_a_fifo_as_the_journal_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = journal.journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    with pytest.raises(OSError, match="not a regular file but a FIFO"):
        journal.record("lambda:x", "fn", "memory_mb", 128)


# -- a real driver killed mid-sweep, against the controller test double ----------------------


def test_kill_9_mid_sweep_then_the_next_run_restores_the_memory_first(
    controller: object, wskprops: Path, tmp_path: Path
) -> None:
    from serverless_hpc.openwhisk import deploy
    from serverless_hpc.openwhisk.client import OpenWhiskClient
    from serverless_hpc.openwhisk.config import load_credentials
    from tests.doubles.openwhisk_controller import ControllerDouble

    assert isinstance(controller, ControllerDouble)
    # GIVEN the sleep action applied on the double at 512 MB (the namespace maximum)
    deploy.apply(
        OpenWhiskClient(load_credentials()),
        deploy.ProjectConfig(
            workloads=("sleep",), images={"lean": "img:1"}, timeout_ms={"sleep": 120_000}
        ),
    )
    action = "serverless-hpc/sleep"
    original = controller.actions[action]["limits"]["memory"]
    assert original == 512
    env = shpc_env(tmp_path, HOME=str(wskprops.parent))
    common = ["bench", "--targets", "openwhisk", "--workloads", "sleep", "--shards", "1"]
    common += ["--repeats", "1", "--modes", "natural", "--timeout", "100", "-q"]
    # WHEN a driver sweeping 256,384 MB is killed with SIGKILL while the first size runs
    driver = start_shpc(
        [*common, "--memory-mb", "256,384", "--param", "sleep.seconds=30", "--out", "run1"],
        env,
        tmp_path,
    )
    try:
        wait_for(
            "the driver to change the action's memory",
            lambda: controller.actions[action]["limits"]["memory"] == 256,
        )
        assert (tmp_path / "state" / journal.JOURNAL_FILE).exists()
    finally:
        driver.kill()
        driver.communicate(timeout=EXIT_DEADLINE_S)
    assert driver.returncode == -signal.SIGKILL
    # THEN the action is left at the sweep's size...
    assert controller.actions[action]["limits"]["memory"] == 256
    # WHEN the next run (no sweep) starts
    done = run_shpc([*common, "--param", "sleep.seconds=0", "--out", "run2"], env, tmp_path)
    # THEN it put the memory back before measuring, said so, and measured at the original
    assert done.returncode == 0, done.stderr
    assert f"{action.split('/')[1]} memory_mb restored to {original}" in done.stderr
    records = [
        json.loads(x) for x in (tmp_path / "run2" / "records.jsonl").read_text().splitlines()
    ]
    assert records and all(r["memory_mb"] == original for r in records)
    assert controller.actions[action]["limits"]["memory"] == original
    assert not (tmp_path / "state" / journal.JOURNAL_FILE).exists()


# -- lambda: the same hooks, against botocore's Stubber (a test double of the Lambda API) --


def _lambda_target(stub_client: Any) -> Any:
    from serverless_hpc import workloads
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings

    extra = {f"function.{w}": f"fn-{w}" for w in workloads.names()}
    return LambdaTarget(
        TargetSettings(extra={**extra, "architecture": "x86_64", "region": "eu-west-1"}),
        lambda_client=stub_client,
        sleep=lambda _s: None,
    )


def _stub_update(stub: Any, memory: int) -> None:
    stub.add_response(
        "update_function_configuration",
        {"MemorySize": memory, "LastUpdateStatus": "InProgress"},
        {"FunctionName": "fn-classify", "MemorySize": memory},
    )
    stub.add_response(
        "get_function",
        {"Configuration": {"LastUpdateStatus": "Successful"}},
        {"FunctionName": "fn-classify"},
    )


def test_lambda_journals_a_change_and_the_next_target_restores_a_dead_drivers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stub:
        # GIVEN a driver that set fn-classify from 2048 to 512 MB and then died (its entry's
        # owner made one that no process holds, as after kill -9)
        first = _lambda_target(client)
        first.open()
        stub.add_response(
            "get_function_configuration", {"MemorySize": 2048}, {"FunctionName": "fn-classify"}
        )
        _stub_update(stub, 512)
        first.set_memory("classify", 512)
        data = json.loads(journal.journal_path().read_text())
        assert [(e["resource"], e["original"]) for e in data["entries"]] == [("fn-classify", 2048)]
        data["entries"][0]["owner"] = "1-deadbeef.lock"
        journal.journal_path().write_text(json.dumps(data))
        # WHEN the next target opens THEN it puts 2048 MB back first, and says so
        _stub_update(stub, 2048)
        with caplog.at_level(logging.WARNING, logger="serverless_hpc.journal"):
            _lambda_target(client).open()
        stub.assert_no_pending_responses()
        assert "fn-classify memory_mb restored to 2048" in caplog.text
        assert not journal.journal_path().exists()


def test_lambda_clears_its_entry_when_it_restores(caplog: pytest.LogCaptureFixture) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stub:
        target = _lambda_target(client)
        target.open()
        stub.add_response(
            "get_function_configuration", {"MemorySize": 1769}, {"FunctionName": "fn-classify"}
        )
        _stub_update(stub, 512)
        _stub_update(stub, 1769)
        target.set_memory("classify", 512)
        assert journal.journal_path().exists()
        target.close()
        assert not journal.journal_path().exists()
