"""``standalone`` as the emulated VM: one control group of the VM's vCPUs (capped at the
machine's) with the reserving weight a local-faas instance gets, on a fake cgroup tree and,
as root, on the real kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serverless_hpc.host import available_cpus
from serverless_hpc.targets import cgroups
from serverless_hpc.targets.base import TargetSettings, TargetUnavailable
from serverless_hpc.targets.cgroups import CgroupV2
from serverless_hpc.targets.resources import PROFILES, ResourceManager
from serverless_hpc.targets.standalone import StandaloneTarget


def _fake_rmdir(path: Path, deadline_s: float = 0.0) -> None:
    import shutil

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


def test_a_pool_group_is_a_quota_with_the_instances_weight_per_cpu(fake_v2: Path) -> None:
    manager = ResourceManager(PROFILES["lambda"], backend=CgroupV2(fake_v2), driver_pid=11)
    pool = manager.pool_group(2.0)
    instance = manager.group_for(1769)  # one vCPU's function instance
    pool_dir = fake_v2 / str(pool.rel)
    assert (pool_dir / "cpu.max").read_text() == "200000 100000"
    # the same rule as a function instance: 1024 shares per CPU times the reserve factor
    weight = int((pool_dir / "cpu.weight").read_text())
    one = int((fake_v2 / str(instance.rel) / "cpu.weight").read_text())
    assert weight == 1 + (2 * 1024 * cgroups.RESERVE_FACTOR - 2) * 9999 // 262_142
    assert weight > one
    assert not (pool_dir / "memory.max").exists()
    assert pool.enforcement["cpu"] == "cgroup-v2-quota"
    assert pool.enforcement["memory"] == "none"
    with pytest.raises(cgroups.ResourceError):
        manager.pool_group(0)
    manager.close()


def test_the_emulated_vm_size_comes_from_the_catalogue_or_the_option() -> None:
    t = StandaloneTarget(TargetSettings())
    assert t.vm_vcpus == 4  # t3.xlarge, the profile's comparison VM
    assert t.vcpus == min(4, available_cpus())
    assert t.workers == round(t.vcpus)
    one = StandaloneTarget(TargetSettings(extra={"standalone.vcpus": "1"}))
    assert one.vcpus == 1.0 and one.workers == 1
    with pytest.raises(TargetUnavailable, match="vcpus must be an integer"):
        StandaloneTarget(TargetSettings(extra={"standalone.vcpus": "lots"}))
    # on the VM itself the pool is the machine: no confinement
    assert StandaloneTarget(TargetSettings(), platform="ec2").resources is None


def test_workers_run_inside_the_pool_group(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("real control groups need root here (not root)")
    backend, why = cgroups.detect()
    if backend is None:
        pytest.skip(f"no usable control groups: {why}")
    settings = TargetSettings(log_dir=tmp_path, extra={"standalone.vcpus": "1"})
    with StandaloneTarget(settings) as t:
        out = t.invoke({"workload": "sleep", "params": {"seconds": 0.01}}, timeout_s=30)
        assert out.ok
        assert out.resources["cpus"] == 1.0
        assert out.resources["cpu"].endswith("-quota")
        group = t.describe()["resources"]
        assert group["cpu_reserved"] is True
        membership = Path(f"/proc/{out.instance}/cgroup").read_text()
        assert t.resources is not None and t.resources.parent in membership
        parents = [p / t.resources.parent for p in backend.parents()]
    assert not any(p.exists() for p in parents), "the pool's group outlived the target"


def test_in_the_kernel_the_pool_and_an_instance_weigh_the_same_per_vcpu() -> None:
    if os.geteuid() != 0:
        pytest.skip("real control groups need root here (not root)")
    backend, why = cgroups.detect()
    if backend is None:
        pytest.skip(f"no usable control groups: {why}")
    vm = ResourceManager(PROFILES["lambda"], backend=backend, label="standalone")
    faas = ResourceManager(PROFILES["lambda"], backend=backend)
    vm.open()
    faas.open()
    try:
        pool, one = vm.pool_group(2.0), faas.group_for(1769)  # 2 vCPUs; 1 vCPU
        if isinstance(backend, cgroups.CgroupV1):
            read = lambda rel: int((backend.cpu_root / rel / "cpu.shares").read_text())  # noqa: E731
            assert read(pool.rel) == 2 * read(one.rel)
            # the two drivers' parents compete as equals
            assert read(vm.parent) == read(faas.parent) == 262_144
            quota = int((backend.cpu_root / str(pool.rel) / "cpu.cfs_quota_us").read_text())
        else:
            assert isinstance(backend, CgroupV2)
            weight = lambda rel: int((backend.root / rel / "cpu.weight").read_text())  # noqa: E731
            assert weight(pool.rel) == pytest.approx(2 * weight(one.rel), rel=0.01)
            assert weight(vm.parent) == weight(faas.parent) == 10_000
            quota = int((backend.root / str(pool.rel) / "cpu.max").read_text().split()[0])
        assert quota == 2 * cgroups.CFS_PERIOD_US
    finally:
        vm.close()
        faas.close()
