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

from serverless_hpc.targets import TargetUnavailable, check_options, create
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
    assert set(parts) == {"process_start_ms", "import_ms", "load_ms", "first_call_ms"}
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
    assert out.duration_ms == 500.0  # billed for the whole timeout, as Lambda bills it
    assert out.billed_ms is not None and out.billed_ms >= 500.0
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
    # the target closes first (killing the busy instance), then the pool joins its thread
    with (
        ThreadPoolExecutor(1) as pool,
        LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=1)) as t,
    ):
        busy = pool.submit(t.invoke, _sleep(30), timeout_s=60)
        time.sleep(0.5)
        out = t.invoke(_sleep(), timeout_s=0.4)
        assert out.response["error"]["type"] == "Throttled"
        assert "concurrency cap 1" in out.response["error"]["message"]
        # the wait ended on its own deadline, not when the only instance became free
        assert not busy.done()
    assert busy.result().response["error"]["type"] == "PlatformError"  # killed by close


def test_memory_over_the_setting_fails_the_invocation_and_retires_the_instance(
    tmp_path: Path,
) -> None:
    # The "none" profile: no kernel limit, so the check after the invocation catches it.
    settings = TargetSettings(log_dir=tmp_path, memory_mb=256, extra={"profile": "none"})
    with LocalFaasTarget(settings) as t:
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
    with pytest.raises(TargetUnavailable, match="--memory-mb: memory_mb must be >= 128"):
        create("local-faas", TargetSettings(memory_mb=64))


def _worker_children() -> set[int]:
    """PIDs of this process's children running the function-instance module."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"serverless_hpc.worker" in cmdline:
            found.add(int(entry.name))
    return found


def test_closing_during_an_invocation_leaves_no_process_and_refuses_more(tmp_path: Path) -> None:
    t = LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=2))
    t.open()
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(t.invoke, _sleep(30), timeout_s=60)
        deadline = time.monotonic() + 20
        while not _worker_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let it get into the sleep
        t.close()
        out = busy.result(timeout=60)
    # the in-flight call was cut off (had it run to its 30 s, it would have succeeded)
    assert not out.ok and out.response["error"]["type"] == "PlatformError"
    assert _worker_children() == set()
    late = t.invoke(_sleep(), timeout_s=5)
    assert late.response["error"]["message"] == "local-faas target is closed"
    assert _worker_children() == set()


def test_the_cap_bounds_live_processes_under_churn(tmp_path: Path) -> None:
    # GIVEN a cap of 2, two functions competing, forced-cold and warm calls mixed
    seen: list[int] = []
    stop = False

    def watch() -> None:
        while not stop:
            seen.append(len(_worker_children()))
            time.sleep(0.01)

    with LocalFaasTarget(TargetSettings(log_dir=tmp_path, concurrency=2, keep_alive_s=0.2)) as t:
        import threading

        watcher = threading.Thread(target=watch)
        watcher.start()
        reqs = [
            (
                {"workload": "dataproc", "params": {"split": "x"}} if i % 3 == 0 else _sleep(0.05),
                i % 4 == 0,
            )
            for i in range(24)
        ]
        with ThreadPoolExecutor(6) as pool:
            outs = list(pool.map(lambda rq: t.invoke(rq[0], timeout_s=30, force_cold=rq[1]), reqs))
        stop = True
        watcher.join()
    # THEN no call was lost and never more than 2 instance processes were alive at once
    assert all(o.ok or o.response["error"]["type"] == "InvalidRequest" for o in outs)
    assert max(seen) <= 2
    assert _worker_children() == set()


def test_max_rss_is_the_peak_of_this_invocation_not_of_the_instance_life(
    faas: LocalFaasTarget,
) -> None:
    big = faas.invoke(_sleep(alloc_mb=300), timeout_s=30)
    small = faas.invoke(_sleep(), timeout_s=30)
    assert big.instance == small.instance  # same warm instance
    assert big.max_rss_mb is not None and small.max_rss_mb is not None
    assert big.max_rss_mb > 300
    assert small.max_rss_mb < big.max_rss_mb - 200


def test_standalone_close_during_an_invocation_kills_everything(tmp_path: Path) -> None:
    t = StandaloneTarget(TargetSettings(log_dir=tmp_path, concurrency=2))
    t.open()
    assert len(_worker_children()) == 2
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(t.invoke, _sleep(30), timeout_s=60)
        time.sleep(0.5)
        t.close()
        out = busy.result(timeout=15)
    assert out.response["error"]["type"] == "PlatformError"
    time.sleep(0.2)  # no replacement may be started after close
    assert _worker_children() == set()
    assert (
        t.invoke(_sleep(), timeout_s=5).response["error"]["message"]
        == "standalone target is closed"
    )


class _OptTarget(StandaloneTarget):
    """A test double: a target that understands two options (never opened)."""

    name = "standalone"
    options = frozenset({"region", "workers"})

    def _vm_vcpus(self) -> int:
        return 4  # the double's options are not standalone's: no vcpus to read


class _OtherOptTarget(LocalFaasTarget):
    """A second test double with one option of its own and one in common."""

    name = "local-faas"
    options = frozenset({"region", "colour"})


def test_plain_options_reach_every_target_that_knows_them_and_prefixed_ones_win() -> None:
    extra = {"region": "eu", "workers": "3", "colour": "red", "standalone.region": "us"}
    a = _OptTarget(TargetSettings(extra=extra))
    b = _OtherOptTarget(TargetSettings(extra=extra))
    check_options(extra, [a, b])  # every key reaches some target
    assert a.target_options() == {"region": "us", "workers": "3"}
    assert b.target_options() == {"region": "eu", "colour": "red"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"regoin": "eu"}, "--target-opt regoin: no target in this run knows it"),
        ({"openwhisk.project": "x"}, "target 'openwhisk' is not in this run"),
    ],
)
def test_an_option_no_target_of_the_run_takes_is_an_error(extra: dict, fragment: str) -> None:
    a = _OptTarget(TargetSettings(extra=extra))
    with pytest.raises(TargetUnavailable, match=fragment):
        check_options(extra, [a])


def test_a_prefixed_option_the_target_does_not_know_is_an_error() -> None:
    t = _OptTarget(TargetSettings(extra={"standalone.colour": "red"}))
    with pytest.raises(
        TargetUnavailable,
        match=r"unknown --target-opt standalone.colour \(known: region, workers\)",
    ):
        t.target_options()
