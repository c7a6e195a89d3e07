"""Instance resources: profiles, the cgroup v1/v2 writes, placement before exec, the sweep,
the fallback, and (where the machine allows) real groups with a real kernel OOM kill.

This development machine has cgroup v1 only: the v2 writes are checked against a fake
cgroupfs tree under ``tmp_path`` (plain files, with ``rmdir`` emulated as the kernel does it),
the v1 path and the OOM kill against the real kernel when running as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serverless_hpc.targets import cgroups, resources
from serverless_hpc.targets.base import TargetSettings, TargetUnavailable
from serverless_hpc.targets.cgroups import CgroupV1, CgroupV2, Limits, detect
from serverless_hpc.targets.local_faas import LocalFaasTarget
from serverless_hpc.targets.resources import PROFILES, ResourceManager

MiB = 1024 * 1024


def _sleep(seconds: float = 0.0, **extra: object) -> dict:
    return {"workload": "sleep", "params": {"seconds": seconds, **extra}}


# -- profiles ------------------------------------------------------------------------------


def test_lambda_profile_is_one_vcpu_per_1769_mb_up_to_six() -> None:
    lam = PROFILES["lambda"]
    assert lam.cpus(1769) == pytest.approx(1.0)
    assert lam.cpus(512) == pytest.approx(512 / 1769)
    assert lam.cpus(3538) == pytest.approx(2.0)
    assert lam.cpus(10240) == pytest.approx(10240 / 1769)
    assert lam.cpus(20000) == 6.0


def test_openwhisk_profile_is_a_share_of_the_default_1024_mb_pool() -> None:
    ow = PROFILES["openwhisk"]
    assert ow.mode == "share"
    assert ow.cpus(256) == pytest.approx(0.25)
    assert ow.cpus(512) == pytest.approx(0.5)


def test_none_profile_controls_nothing() -> None:
    assert PROFILES["none"].cpus(1769) is None
    assert ResourceManager(PROFILES["none"]).limits(512) == Limits(None, "none", None)


def test_unknown_profile_option_names_the_known_ones() -> None:
    with pytest.raises(TargetUnavailable, match="lambda, openwhisk, none"):
        LocalFaasTarget(TargetSettings(extra={"profile": "gcp"}))
    with pytest.raises(TargetUnavailable, match="capacity"):
        LocalFaasTarget(TargetSettings(extra={"capacity": "maybe"}))


# -- detection -----------------------------------------------------------------------------


def test_detect_reads_v1_mounts_and_own_groups(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "memory" / "job" / "x").mkdir(parents=True)
    mounts = (
        f"cgroup {tmp_path}/cpu cgroup rw,relatime,cpu 0 0\n"
        f"cgroup {tmp_path}/memory cgroup rw,relatime,memory 0 0\n"
    )
    backend, why = detect(mounts_text=mounts, cgroup_text="4:memory:/job/x\n1:cpu:/\n0::/\n")
    assert why == ""
    assert isinstance(backend, CgroupV1)
    assert backend.cpu_root == tmp_path / "cpu"
    assert backend.memory_root == tmp_path / "memory" / "job" / "x"


def test_detect_v2_needs_cpu_and_memory_delegated(tmp_path: Path) -> None:
    group = tmp_path / "user.slice" / "me"
    group.mkdir(parents=True)
    (group / "cgroup.controllers").write_text("cpuset io pids\n")
    mounts = f"cgroup2 {tmp_path} cgroup2 rw,nosuid 0 0\n"
    backend, why = detect(mounts_text=mounts, cgroup_text="0::/user.slice/me\n")
    assert backend is None and "does not delegate cpu and memory" in why
    (group / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    backend, why = detect(mounts_text=mounts, cgroup_text="0::/user.slice/me\n")
    assert isinstance(backend, CgroupV2) and backend.root == group


def test_detect_without_cgroups_says_why() -> None:
    backend, why = detect(mounts_text="proc /proc proc rw 0 0\n", cgroup_text="")
    assert backend is None and "no cgroup" in why


# -- cgroup v2 against a fake cgroupfs -----------------------------------------------------


def _fake_rmdir(path: Path, deadline_s: float = 0.0) -> None:
    """cgroupfs removes a group with its interface files; a plain directory needs them gone."""
    if path.exists():
        shutil.rmtree(path)


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "rmdir_group", _fake_rmdir)
    return root


def test_v2_writes_quota_memory_and_no_swap(fake_v2: Path) -> None:
    manager = ResourceManager(PROFILES["lambda"], backend=CgroupV2(fake_v2), driver_pid=4242)
    manager.open()
    # The kernel creates memory.swap.max with the group; the fake tree pre-creates it.
    group_dir = fake_v2 / manager.parent / "i1"
    group_dir.mkdir(parents=True)
    (group_dir / "memory.swap.max").write_text("max\n")
    group = manager.group_for(1769)
    assert (fake_v2 / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (fake_v2 / manager.parent / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (group_dir / "cpu.max").read_text() == "100000 100000"
    # a reservation too: 64 CPUs' worth of shares (65536) as a v2 weight
    assert (group_dir / "cpu.weight").read_text() == str(1 + (65536 - 2) * 9999 // 262142)
    assert (fake_v2 / manager.parent / "cpu.weight").read_text() == "10000"
    assert (group_dir / "memory.max").read_text() == str(1769 * MiB)
    assert (group_dir / "memory.swap.max").read_text() == "0"
    assert group.procs == [group_dir / "cgroup.procs"]
    assert group.enforcement == {
        "profile": "lambda",
        "cpus": pytest.approx(1.0),
        "cpu": "cgroup-v2-quota",
        "cpu_reserved": True,
        "memory": "cgroup-v2-max",
    }
    (group_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed() is True
    assert group.oom_killed() is False  # counted once
    group.remove()
    assert not group_dir.exists()
    manager.close()
    assert not (fake_v2 / manager.parent).exists()


def test_v2_share_profile_writes_a_weight(fake_v2: Path) -> None:
    manager = ResourceManager(PROFILES["openwhisk"], backend=CgroupV2(fake_v2), driver_pid=7)
    group = manager.group_for(256)
    # 256 of 1024 shares -> the kernel's v1->v2 mapping 1 + (256 - 2) * 9999 / 262142
    assert (fake_v2 / group.rel / "cpu.weight").read_text() == "10"  # type: ignore[operator]
    assert group.enforcement["cpu"] == "cgroup-v2-weight"
    manager.close()


def test_v1_writes_quota_limit_and_memsw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "rmdir_group", _fake_rmdir)
    backend = CgroupV1(tmp_path / "cpu", tmp_path / "memory")
    mem = tmp_path / "memory" / "g"
    mem.mkdir(parents=True)
    (mem / "memory.memsw.limit_in_bytes").write_text("max")
    limits = Limits(cpus=0.5, cpu_mode="quota", memory_mb=512, reserve=True)
    procs, enforcement = backend.create("g", limits)
    assert (tmp_path / "cpu" / "g" / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "cpu" / "g" / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "cpu" / "g" / "cpu.shares").read_text() == str(512 * 64)
    assert (mem / "memory.limit_in_bytes").read_text() == str(512 * MiB)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(512 * MiB)
    assert procs == [tmp_path / "cpu" / "g" / "cgroup.procs", mem / "cgroup.procs"]
    assert enforcement == {
        "cpu": "cgroup-v1-quota",
        "cpu_reserved": True,
        "memory": "cgroup-v1-limit",
    }


# -- placement before the child runs, and the sweep -----------------------------------------


def test_wrap_places_the_child_before_its_program_runs(tmp_path: Path) -> None:
    """The shell writes the pid that ``exec`` keeps, so the program's own pid is in the file."""
    procs = [tmp_path / "a.procs", tmp_path / "b.procs"]
    group = resources.InstanceGroup(
        manager=ResourceManager(PROFILES["lambda"], backend=CgroupV2(tmp_path)),
        rel="x",
        procs=procs,
        enforcement={},
    )
    code = "import os, sys; print(os.getpid(), open(sys.argv[1]).read().strip())"
    argv = group.wrap([sys.executable, "-c", code, str(procs[0])])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    pid, placed = out.stdout.split()
    assert pid == placed
    assert procs[1].read_text().strip() == pid


def test_wrap_fails_the_start_when_the_group_cannot_be_joined(tmp_path: Path) -> None:
    group = resources.InstanceGroup(
        manager=ResourceManager(PROFILES["lambda"], backend=CgroupV2(tmp_path)),
        rel="x",
        procs=[tmp_path / "missing-dir" / "cgroup.procs"],
        enforcement={},
    )
    argv = group.wrap([sys.executable, "-c", "print('ran')"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "ran" not in out.stdout


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def test_sweep_removes_only_dead_drivers_groups_of_this_pid_namespace(fake_v2: Path) -> None:
    ns = resources._pidns()
    dead = fake_v2 / f"shpc-{ns}-{_dead_pid()}-1"
    (dead / "i3").mkdir(parents=True)
    alive = fake_v2 / f"shpc-{ns}-{os.getpid()}-2"
    alive.mkdir()
    foreign = fake_v2 / f"shpc-{ns + 1}-{_dead_pid()}-1"
    foreign.mkdir()
    other = fake_v2 / "not-ours"
    other.mkdir()
    manager = ResourceManager(PROFILES["lambda"], backend=CgroupV2(fake_v2), driver_pid=1)
    assert manager.sweep() == [dead]
    assert not dead.exists() and alive.exists() and foreign.exists() and other.exists()


# -- the fallback --------------------------------------------------------------------------


def _no_cgroups() -> tuple[None, str]:
    return None, "test double: no cgroups here"


def test_fallback_uses_affinity_and_the_post_check(caplog: pytest.LogCaptureFixture) -> None:
    manager = ResourceManager(PROFILES["lambda"], detector=_no_cgroups)
    manager.open()
    assert "test double: no cgroups here" in caplog.text
    group = manager.group_for(3538)
    assert group.enforcement["memory"] == "post-invocation-check"
    if shutil.which("taskset"):
        n = min(2, len(os.sched_getaffinity(0)))
        assert group.enforcement["cpu"] == f"affinity-{n}"
        assert group.wrap(["prog"])[:2] == [shutil.which("taskset"), "-c"]
    else:
        assert group.enforcement["cpu"] == "none"
    manager.close()


def test_fallback_records_what_applied_and_still_catches_memory(tmp_path: Path) -> None:
    manager = ResourceManager(PROFILES["lambda"], detector=_no_cgroups)
    settings = TargetSettings(log_dir=tmp_path, memory_mb=256)
    with LocalFaasTarget(settings, manager=manager) as t:
        out = t.invoke(_sleep(alloc_mb=400), timeout_s=60)
        assert out.response["error"]["type"] == "OutOfMemory"
        assert out.resources["memory"] == "post-invocation-check"
        assert out.resources["profile"] == "lambda"
        assert "fallback" in t.describe()["enforcement"]


# -- capacity -------------------------------------------------------------------------------


def _two_at_once(t: LocalFaasTarget) -> list:
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(t.invoke, _sleep(2.0), timeout_s=60) for _ in range(2)]
        return [f.result() for f in futures]


def test_quotas_over_the_machine_are_recorded_as_oversubscribed(tmp_path: Path) -> None:
    manager = ResourceManager(PROFILES["lambda"], detector=_no_cgroups, machine_cpus=2)
    settings = TargetSettings(log_dir=tmp_path, memory_mb=3538, concurrency=2)  # 2 CPUs each
    with LocalFaasTarget(settings, manager=manager) as t:
        t.invoke(_sleep(), timeout_s=60)  # one alone fits
        outs = _two_at_once(t)
    assert all(o.ok for o in outs)
    assert [o.oversubscribed for o in outs] == [True, True]


def test_hold_mode_keeps_in_flight_quotas_within_the_machine(tmp_path: Path) -> None:
    manager = ResourceManager(PROFILES["lambda"], detector=_no_cgroups, machine_cpus=2)
    settings = TargetSettings(
        log_dir=tmp_path, memory_mb=3538, concurrency=2, extra={"capacity": "hold"}
    )
    with LocalFaasTarget(settings, manager=manager) as t:
        outs = _two_at_once(t)
        assert t.cold_starts == 1  # the second waited for the first and reused its instance
    assert all(o.ok and o.oversubscribed is False for o in outs)
    assert len({o.instance for o in outs}) == 1


def test_none_profile_does_not_assess_capacity(tmp_path: Path) -> None:
    settings = TargetSettings(log_dir=tmp_path, extra={"profile": "none"})
    with LocalFaasTarget(settings) as t:
        out = t.invoke(_sleep(), timeout_s=60)
    assert out.ok and out.oversubscribed is None
    assert out.resources == {
        "profile": "none",
        "cpus": None,
        "cpu": "none",
        "memory": "post-invocation-check",
    }


# -- real groups ----------------------------------------------------------------------------


def _real_backend() -> cgroups.Backend:
    if os.geteuid() != 0:
        pytest.skip("real control groups need root here (not root)")
    backend, why = detect()
    if backend is None:
        pytest.skip(f"no usable control groups: {why}")
    return backend


def _ours(backend: cgroups.Backend) -> list[Path]:
    prefix = f"shpc-{resources._pidns()}-{os.getpid()}-"
    return [c for p in backend.parents() for c in p.iterdir() if c.name.startswith(prefix)]


@pytest.fixture
def real_backend() -> Iterator[cgroups.Backend]:
    backend = _real_backend()
    assert _ours(backend) == []
    yield backend
    assert _ours(backend) == [], "groups leaked"


def test_real_groups_enforce_the_limits_and_nothing_leaks(
    real_backend: cgroups.Backend, tmp_path: Path
) -> None:
    settings = TargetSettings(log_dir=tmp_path, memory_mb=512, keep_alive_s=60)
    with LocalFaasTarget(settings) as t:
        first = t.invoke(_sleep(), timeout_s=60)
        assert first.ok, first.error
        kind = real_backend.name
        assert first.resources["cpu"] == f"{kind}-quota"
        assert first.resources["memory"] in (f"{kind}-limit", f"{kind}-max")
        assert first.resources["cpus"] == pytest.approx(512 / 1769)
        pid = int(first.instance or 0)
        membership = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"/{t.resources.parent}/i" in membership
        assert len(t.resources.live()) == 1
        # The kernel kills it during the invocation: far short of the 30 s sleep.
        oom = t.invoke(_sleep(30.0, alloc_mb=900), timeout_s=60)
        assert oom.response["error"]["type"] == "OutOfMemory"
        assert oom.duration_ms is not None and oom.duration_ms < 30_000
        after = t.invoke(_sleep(), timeout_s=60)
        assert after.ok and after.cold and after.instance != first.instance
        assert len(t.resources.live()) == 1  # the killed instance's group is gone
    assert t.resources.live() == set()


def test_two_managers_of_one_driver_keep_their_groups_apart(
    real_backend: cgroups.Backend,
) -> None:
    a = ResourceManager(PROFILES["lambda"])
    b = ResourceManager(PROFILES["lambda"])
    a.open()
    b.open()
    ga, gb = a.group_for(512), b.group_for(512)
    assert ga.rel != gb.rel
    a.close()
    assert b.live() == {gb.rel}
    assert all((p / gb.rel).exists() for p in real_backend.parents())  # b's group survived
    b.close()


def test_a_dead_drivers_groups_are_swept_at_open(
    real_backend: cgroups.Backend, tmp_path: Path
) -> None:
    crashed = ResourceManager(PROFILES["lambda"], backend=real_backend, driver_pid=_dead_pid())
    crashed.group_for(512)  # a driver that never closed
    leftovers = [p / crashed.parent for p in real_backend.parents()]
    assert all(p.exists() for p in leftovers)
    fresh = ResourceManager(PROFILES["lambda"])
    fresh.open()
    try:
        assert not any(p.exists() for p in leftovers)
    finally:
        fresh.close()
