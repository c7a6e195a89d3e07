"""Process lifetime: a stopped or killed driver leaves no instance behind and no model published.

Real ``shpc`` processes with real ``local-faas`` instances: SIGTERM and SIGHUP are handled
as Ctrl-C is (instances killed, run.json ``aborted``, every record kept); after kill -9 the
kernel kills the instances (``PR_SET_PDEATHSIG``) and the store's ``latest`` does not move.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_hpc import store as model_store
from serverless_hpc.rundir import Holder, RunLock, read_records
from serverless_hpc.targets.process import WorkerProcess
from tests.faults.conftest import (
    EXIT_DEADLINE_S,
    gone,
    instances_of,
    shpc_env,
    sleeping,
    start_shpc,
    thread_count,
    wait_for,
)

pytestmark = [pytest.mark.usefixtures("linux_proc"), pytest.mark.slow]

#: dataproc (fast) runs before sleep in plan order, so records exist when the sleep is cut.
BENCH = [
    "bench",
    "--targets",
    "local-faas",
    "--workloads",
    "dataproc,sleep",
    "--param",
    "dataproc.split=test",
    "--param",
    "sleep.seconds=120",
    "--shards",
    "1",
    "--repeats",
    "1",
    "--modes",
    "natural",
    "--concurrency",
    "2",
    "-q",
]


def _busy(driver: int, workload: str, running: Callable[[int], bool]) -> list[int]:
    """The driver's instances of ``workload`` once one runs its invocation (past init)."""
    pids = instances_of(driver, workload)
    return pids if any(running(p) for p in pids) else []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_kills_the_instances_marks_aborted_and_keeps_the_records(
    tmp_path: Path, data_dir: Path, sig: signal.Signals, code: int
) -> None:
    # GIVEN a real run whose sleep invocation is in flight on a real local-faas instance
    out = tmp_path / "run"
    env = shpc_env(tmp_path, FASHION_MNIST_DIR=str(data_dir))
    proc = start_shpc([*BENCH, "--out", str(out)], env, tmp_path)
    sleeper = wait_for("the sleep invocation", lambda: _busy(proc.pid, "sleep", sleeping))
    # WHEN the driver is sent the signal
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=EXIT_DEADLINE_S)
    # THEN it exits 128+N saying why, its instances are gone, and nothing is lost
    assert proc.returncode == code, err
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    wait_for("the instance to be gone", lambda: gone(sleeper), 30)
    meta = json.loads((out / "run.json").read_text())
    assert meta["aborted"]["by"] == sig.name and "finished" not in meta
    records = read_records(out / "records.jsonl")
    assert [r["workload"] for r in records] == ["dataproc"] and records[0]["ok"]
    assert meta["aborted"]["records"] == 1
    assert (out / ".lock").read_text() == ""  # released


def test_kill_9_of_the_driver_takes_its_instances_with_it(tmp_path: Path, data_dir: Path) -> None:
    # GIVEN a real run whose sleep invocation is in flight
    out = tmp_path / "run"
    env = shpc_env(tmp_path, FASHION_MNIST_DIR=str(data_dir))
    proc = start_shpc([*BENCH, "--out", str(out)], env, tmp_path)
    sleeper = wait_for("the sleep invocation", lambda: _busy(proc.pid, "sleep", sleeping))
    # WHEN the driver is killed with SIGKILL (no handler can run)
    proc.kill()
    proc.communicate(timeout=EXIT_DEADLINE_S)
    # THEN the instance dies with it (not 30 s later, not never)
    wait_for("the orphaned instance to die", lambda: gone(sleeper), 30)
    # AND the records written before are intact, and the dead run's claim is reported as stale
    assert [r["workload"] for r in read_records(out / "records.jsonl")] == ["dataproc"]
    holder = Holder.parse((out / ".lock").read_text())
    assert holder is not None and holder.pid == proc.pid
    with RunLock.claim(out) as lock:
        assert lock.stale is not None and lock.stale.pid == proc.pid


def test_kill_9_during_training_never_moves_latest(tmp_path: Path, data_dir: Path) -> None:
    # GIVEN a store whose latest model is a known version, and a real training run on it
    store_dir = tmp_path / "store"
    (store_dir / "models/fashion-cnn").mkdir(parents=True)
    (store_dir / "models/fashion-cnn/LATEST").write_text("v-before")
    env = shpc_env(tmp_path, FASHION_MNIST_DIR=str(data_dir), SHPC_STORE=str(store_dir))
    args = ["bench", "--targets", "local-faas", "--workloads", "train", "--train-epochs", "1"]
    args += ["--train-limit", "1000", "-q", "--out", str(tmp_path / "run")]
    proc = start_shpc(args, env, tmp_path)
    trainer = wait_for(
        "training to start", lambda: _busy(proc.pid, "train", lambda p: thread_count(p) >= 6)
    )
    # WHEN the driver is killed while the instance trains
    proc.kill()
    proc.communicate(timeout=EXIT_DEADLINE_S)
    # THEN the instance is gone, so it can never publish; latest still names the old model
    wait_for("the train instance to die", lambda: gone(trainer), 30)
    assert (store_dir / "models/fashion-cnn/LATEST").read_text() == "v-before"


def test_sigterm_to_invoke_kills_its_instance(tmp_path: Path) -> None:
    # GIVEN shpc invoke running a long request on a local-faas instance
    request = json.dumps({"workload": "sleep", "params": {"seconds": 30}})
    proc = start_shpc(["invoke", "local-faas", request], shpc_env(tmp_path), tmp_path)
    sleeper = wait_for("the sleep invocation", lambda: _busy(proc.pid, "sleep", sleeping))
    # WHEN it is sent SIGTERM
    proc.terminate()
    _, err = proc.communicate(timeout=EXIT_DEADLINE_S)
    # THEN it exits 143 and its instance is gone
    assert proc.returncode == 143 and "Traceback" not in err
    wait_for("the instance to be gone", lambda: gone(sleeper), 30)


def test_an_instance_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    # GIVEN an instance started from a short-lived thread (as local-faas invocations are),
    # WHEN that thread has ended (Linux sends PR_SET_PDEATHSIG on the forking *thread's* exit)
    box: list[WorkerProcess] = []
    starter = threading.Thread(target=lambda: box.append(WorkerProcess(platform="local-faas")))
    starter.start()
    starter.join()
    worker = box[0]
    try:
        worker.wait_ready(60)
        # THEN the instance still serves requests: it dies with the driver, not the thread
        reply = worker.call({"workload": "sleep", "params": {"seconds": 0}}, 60)
        assert reply["response"]["ok"] and worker.alive()
    finally:
        worker.kill()


def test_latest_moves_only_while_the_run_holds_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = model_store.LocalStore(tmp_path / "store")
    store.put_bytes("models/m/LATEST", b"v-before")
    lock_path = tmp_path / "run" / ".lock"
    monkeypatch.setenv("SHPC_RUN_LOCK", str(lock_path))
    # GIVEN a run that holds its lock WHEN an instance saves a model THEN latest moves
    with RunLock.claim(tmp_path / "run"):
        version = model_store.save_bundle(store, "m", {"model.tflite": b"x"}, {})
    assert store.get_bytes("models/m/LATEST").decode() == version
    # GIVEN the run is over (its lock free) WHEN an instance saves a model
    with pytest.raises(model_store.PublishRefused, match="has ended"):
        model_store.save_bundle(store, "m", {"model.tflite": b"y"}, {})
    # THEN the bundle is kept but latest does not move
    assert store.get_bytes("models/m/LATEST").decode() == version


def test_latest_does_not_move_for_an_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an instance whose recorded driver is not its parent any more (it was re-parented)
    store = model_store.LocalStore(tmp_path / "store")
    store.put_bytes("models/m/LATEST", b"v-before")
    monkeypatch.setenv("SHPC_PARENT_PID", str(os.getppid() + 1_000_000))
    # WHEN it saves a model THEN it is refused, naming the lost driver; latest is unchanged
    with pytest.raises(model_store.PublishRefused, match="is gone"):
        model_store.save_bundle(store, "m", {"model.tflite": b"x"}, {})
    assert store.get_bytes("models/m/LATEST") == b"v-before"
