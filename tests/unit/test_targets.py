"""The local targets' platform semantics, exercised with the ``sleep`` workload.

Each function instance is a real OS process here, so these tests check real cold starts,
reuse, kills and caps, not a simulation of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serverless_hpc.targets import TargetUnavailable, create
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.local_faas import LocalFaasTarget
from serverless_hpc.targets.standalone import StandaloneTarget


def _sleep(seconds: float = 0.0, **extra: object) -> dict:
    return {"workload": "sleep", "params": {"seconds": seconds, **extra}}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def faas(tmp_path: Path) -> Iterator[LocalFaasTarget]:
    target = LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=2, keep_alive_s=30))
    with target:
        yield target


def test_first_invocation_is_cold_then_warm_on_the_same_instance(faas: LocalFaasTarget) -> None:
    first = faas.invoke(_sleep(), timeout_s=30)
    second = faas.invoke(_sleep(), timeout_s=30)
    assert first.ok and second.ok
    assert first.cold and not second.cold
    assert first.instance == second.instance
    assert first.init_ms is not None and first.init_ms > 0 and second.init_ms is None
    parts = first.breakdown
    assert set(parts) == {"process_start_ms", "import_ms", "model_load_ms", "first_inference_ms"}
    assert 0 < parts["process_start_ms"] < first.init_ms
    assert first.billed_ms is not None and first.billed_ms >= first.init_ms + first.duration_ms - 1
    assert second.billed_ms is not None and second.billed_ms < first.billed_ms


def test_forced_cold_starts_a_new_instance_every_time(faas: LocalFaasTarget) -> None:
    outcomes = [faas.invoke(_sleep(), timeout_s=30, force_cold=True) for _ in range(3)]
    assert all(o.ok and o.cold for o in outcomes)
    assert len({o.instance for o in outcomes}) == 3
    assert faas.idle_count() == 0  # forced-cold instances are retired after use


def test_idle_instances_expire_after_keep_alive(tmp_path: Path) -> None:
    with LocalFaasTarget(TargetSettings(log_dir=tmp_path, keep_alive_s=0.3)) as t:
        assert t.invoke(_sleep(), timeout_s=30).cold
        time.sleep(0.6)
        assert t.idle_count() == 0
        assert t.invoke(_sleep(), timeout_s=30).cold


def test_timeout_kills_the_instance_and_is_recorded(faas: LocalFaasTarget) -> None:
    out = faas.invoke(_sleep(30), timeout_s=0.5)
    assert not out.ok
    assert out.response["error"]["type"] == "Timeout"
    assert out.instance is not None
    deadline = time.monotonic() + 5
    while _pid_alive(int(out.instance)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(int(out.instance))
    assert faas.invoke(_sleep(), timeout_s=30).cold  # the next one needs a new instance


def test_concurrency_cap_bounds_instances_and_queues_the_rest(faas: LocalFaasTarget) -> None:
    # GIVEN a cap of 2 and 4 invocations of 0.6 s sent at once
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: faas.invoke(_sleep(0.6), timeout_s=30), range(4)))
    elapsed = time.monotonic() - t0
    # THEN only two instances ever existed and the other two invocations waited for them
    assert all(o.ok for o in outs)
    assert faas.cold_starts == 2
    assert len({o.instance for o in outs}) == 2
    assert elapsed >= 1.2


def test_waiting_for_a_free_instance_is_bounded(tmp_path: Path) -> None:
    with (
        LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=1)) as t,
        ThreadPoolExecutor(1) as pool,
    ):
        busy = pool.submit(t.invoke, _sleep(2), timeout_s=30)
        time.sleep(0.5)
        t0 = time.monotonic()
        out = t.invoke(_sleep(), timeout_s=0.4)
        waited = time.monotonic() - t0
        assert out.response["error"]["type"] == "Timeout"
        assert "concurrency cap 1" in out.response["error"]["message"]
        assert waited < 1.5
        assert busy.result().ok


def test_memory_over_the_setting_fails_the_invocation_and_retires_the_instance(
    tmp_path: Path,
) -> None:
    with LocalFaasTarget(TargetSettings(log_dir=tmp_path, memory_mb=256)) as t:
        out = t.invoke(_sleep(alloc_mb=400), timeout_s=30)
        assert out.response["error"]["type"] == "OutOfMemory"
        assert "256 MB" in out.response["error"]["message"]
        assert out.max_rss_mb is not None and out.max_rss_mb > 256
        assert t.idle_count() == 0


def test_unknown_workload_starts_no_instance(faas: LocalFaasTarget) -> None:
    out = faas.invoke({"workload": "nope"}, timeout_s=30)
    assert out.response["error"]["type"] == "InvalidRequest"
    assert faas.cold_starts == 0


def test_instance_of_another_function_is_retired_when_at_the_cap(tmp_path: Path) -> None:
    with LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=1)) as t:
        assert t.invoke(_sleep(), timeout_s=30).cold
        other = t.invoke({"workload": "dataproc", "params": {"split": "nope"}}, timeout_s=30)
        assert other.cold  # needed its own instance, so the idle sleep one made room
        assert other.response["error"]["type"] == "InvalidRequest"


def test_standalone_pool_reuses_workers_and_replaces_a_killed_one(tmp_path: Path) -> None:
    with StandaloneTarget(TargetSettings(log_dir=tmp_path, concurrency=2)) as t:
        first = t.invoke(_sleep(), timeout_s=30)
        again = t.invoke(_sleep(), timeout_s=30)
        assert first.cold and not again.cold and first.instance == again.instance
        killed = t.invoke(_sleep(30), timeout_s=0.5)
        assert killed.response["error"]["type"] == "Timeout"
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda _: t.invoke(_sleep(0.2), timeout_s=30), range(2)))
        assert all(o.ok for o in outs)
        assert killed.instance not in {o.instance for o in outs}


def test_unknown_target_and_bad_settings_are_unavailable() -> None:
    with pytest.raises(TargetUnavailable, match="unknown target 'nope'"):
        create("nope", TargetSettings())
    with pytest.raises(TargetUnavailable, match="memory_mb must be >= 128"):
        create("local-faas", TargetSettings(memory_mb=64))
