"""The kernel's side of instance resources: control-group backends that enforce
:class:`Limits` on one process (see :mod:`serverless_hpc.targets.resources` for who asks).

* ``cgroup-v2``: a group per instance under a per-driver parent in this process's own
  (delegated) v2 group: ``cpu.max`` (quota, with a high ``cpu.weight`` so the quota is also
  a reservation, see :data:`RESERVE_FACTOR`) or ``cpu.weight`` alone (share),
  ``memory.max`` with ``memory.swap.max = 0``; kernel OOM kills are read from
  ``memory.events``.
* ``cgroup-v1``: the same in the ``cpu`` and ``memory`` hierarchies: ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` (and ``cpu.shares``) or ``cpu.shares`` alone, ``memory.limit_in_bytes`` plus
  ``memory.memsw.limit_in_bytes`` (so swap cannot hide the limit); OOM kills from
  ``memory.oom_control``.

:func:`detect` picks the one usable here, or says why none is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

#: The CFS period (the kernel's default); a quota of ``cpus`` is ``cpus * period``.
CFS_PERIOD_US: Final = 100_000
#: A quota is a cap; Lambda also *reserves* the share. A group with a quota therefore gets a
#: weight this many times its CPUs' worth (v1 ``cpu.shares`` of 1024 per CPU, capped at the
#: kernel's maximum), so processes outside the emulator cannot starve an instance below its
#: quota. It never lets an instance use more than its quota.
RESERVE_FACTOR: Final = 64
#: Bound on waiting for a just-killed instance's group to empty before ``rmdir``.
RMDIR_DEADLINE_S: Final = 5.0


class ResourceError(Exception):
    """A group could not be created, limited or removed."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one instance gets: ``cpus`` under ``cpu_mode`` and a memory limit (or None)."""

    cpus: float | None
    cpu_mode: str  # "quota" | "share" | "none"
    memory_mb: int | None
    reserve: bool = False  # quota mode: a high weight too (see RESERVE_FACTOR)


class Backend(Protocol):
    """One way of enforcing :class:`Limits` on a process (see the module docstring)."""

    name: str

    def create(self, rel: str, limits: Limits) -> tuple[list[Path], dict[str, Any]]:
        """Make group ``rel`` with ``limits``: its ``cgroup.procs`` files and the enforcement."""
        ...

    def oom_kills(self, rel: str) -> int:
        """Kernel OOM kills in group ``rel`` so far."""
        ...

    def remove(self, rel: str) -> None:
        """Remove group ``rel`` (its processes must be gone)."""
        ...

    def parents(self) -> list[Path]:
        """The directories that hold the per-driver parents (for the leftover sweep)."""
        ...


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise ResourceError(f"cannot write {value.strip()!r} to {path}: {exc}") from exc


def _counter(path: Path, key: str) -> int:
    """The ``key N`` line of a flat-keyed cgroup file (``memory.events``, ``oom_control``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResourceError(f"cannot read {path}: {exc}") from exc
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def rmdir_group(path: Path, deadline_s: float = RMDIR_DEADLINE_S) -> None:
    """``rmdir`` a cgroup, killing stragglers and retrying (bounded) while it is busy."""
    try:  # a group may go while it is listed (its instance's own clean-up removed it)
        children = sorted((p for p in path.iterdir() if p.is_dir()), reverse=True)
    except FileNotFoundError:
        return
    for child in children:
        rmdir_group(child, deadline_s)
    end = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        try:
            path.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            procs = path / "cgroup.procs"
            pids = procs.read_text().split() if procs.exists() else []
            for pid in pids:  # an instance of a dead driver, or one being reaped
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            if time.monotonic() >= end:
                raise ResourceError(f"cannot remove {path}: {exc} (pids {pids})") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        else:
            return


class CgroupV1:
    """Groups in the v1 ``cpu`` and ``memory`` hierarchies (roots: this process's groups)."""

    name = "cgroup-v1"

    def __init__(self, cpu_root: Path, memory_root: Path) -> None:
        self.cpu_root = cpu_root
        self.memory_root = memory_root

    def parents(self) -> list[Path]:
        """Both hierarchies' roots."""
        return [self.cpu_root, self.memory_root]

    def create(self, rel: str, limits: Limits) -> tuple[list[Path], dict[str, Any]]:
        """Make ``rel`` in both hierarchies and set its quota/shares and memory limit."""
        enforcement: dict[str, Any] = {"cpu": "none", "memory": "post-invocation-check"}
        procs: list[Path] = []
        if limits.cpus is not None and limits.cpu_mode != "none":
            cpu = self.cpu_root / rel
            cpu.mkdir(parents=True, exist_ok=True)
            if limits.cpu_mode == "quota":
                _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                quota = max(1000, round(limits.cpus * CFS_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", str(quota))
                enforcement["cpu"] = "cgroup-v1-quota"
                if limits.reserve:
                    shares = min(262_144, max(2, round(limits.cpus * 1024 * RESERVE_FACTOR)))
                    _write(cpu / "cpu.shares", str(shares))
                    # Weights count among siblings: the per-driver parent competes with
                    # every other process of its own parent, so it needs the weight too.
                    for parent in list(Path(rel).parents)[:-1]:
                        _write(self.cpu_root / parent / "cpu.shares", str(262_144))
                    enforcement["cpu_reserved"] = True
            else:
                _write(cpu / "cpu.shares", str(max(2, round(limits.cpus * 1024))))
                enforcement["cpu"] = "cgroup-v1-shares"
            procs.append(cpu / "cgroup.procs")
        if limits.memory_mb is not None:
            mem = self.memory_root / rel
            mem.mkdir(parents=True, exist_ok=True)
            limit = str(limits.memory_mb * 1024 * 1024)
            _write(mem / "memory.limit_in_bytes", limit)
            if (mem / "memory.memsw.limit_in_bytes").exists():
                _write(mem / "memory.memsw.limit_in_bytes", limit)
            else:  # no swap accounting: keep the group out of swap instead
                _write(mem / "memory.swappiness", "0")
            enforcement["memory"] = "cgroup-v1-limit"
            procs.append(mem / "cgroup.procs")
        return procs, enforcement

    def oom_kills(self, rel: str) -> int:
        """``oom_kill`` of ``memory.oom_control`` (kernel >= 4.13)."""
        path = self.memory_root / rel / "memory.oom_control"
        return _counter(path, "oom_kill") if path.exists() else 0

    def remove(self, rel: str) -> None:
        """Remove ``rel`` from both hierarchies."""
        for root in (self.cpu_root, self.memory_root):
            rmdir_group(root / rel)


def _weight(shares: float) -> int:
    """v1 ``cpu.shares`` (2..262144) as a v2 ``cpu.weight`` (1..10000), the kernel's mapping."""
    clamped = min(262_144, max(2, round(shares)))
    return 1 + ((clamped - 2) * 9999) // 262_142


class CgroupV2:
    """Groups under ``root``, a delegated v2 group whose subtree may enable cpu and memory."""

    name = "cgroup-v2"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._enabled: set[Path] = set()

    def parents(self) -> list[Path]:
        """The one root."""
        return [self.root]

    def _enable(self, group: Path) -> None:
        """Let ``group``'s children use the cpu and memory controllers."""
        if group in self._enabled:
            return
        _write(group / "cgroup.subtree_control", "+cpu +memory")
        self._enabled.add(group)

    def create(self, rel: str, limits: Limits) -> tuple[list[Path], dict[str, Any]]:
        """Make ``rel`` (its ancestors with the controllers enabled) and set its limits."""
        path = self.root / rel
        ancestor = self.root
        self._enable(ancestor)
        for part in Path(rel).parts[:-1]:
            ancestor = ancestor / part
            ancestor.mkdir(exist_ok=True)
            self._enable(ancestor)
        path.mkdir(exist_ok=True)
        enforcement: dict[str, Any] = {"cpu": "none", "memory": "post-invocation-check"}
        if limits.cpus is not None and limits.cpu_mode == "quota":
            quota = max(1000, round(limits.cpus * CFS_PERIOD_US))
            _write(path / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            enforcement["cpu"] = "cgroup-v2-quota"
            if limits.reserve:
                _write(path / "cpu.weight", str(_weight(limits.cpus * 1024 * RESERVE_FACTOR)))
                for parent in list(Path(rel).parents)[:-1]:  # see CgroupV1.create
                    _write(self.root / parent / "cpu.weight", "10000")
                enforcement["cpu_reserved"] = True
        elif limits.cpus is not None and limits.cpu_mode == "share":
            _write(path / "cpu.weight", str(_weight(limits.cpus * 1024)))
            enforcement["cpu"] = "cgroup-v2-weight"
        if limits.memory_mb is not None:
            _write(path / "memory.max", str(limits.memory_mb * 1024 * 1024))
            if (path / "memory.swap.max").exists():
                _write(path / "memory.swap.max", "0")
            enforcement["memory"] = "cgroup-v2-max"
        return [path / "cgroup.procs"], enforcement

    def oom_kills(self, rel: str) -> int:
        """``oom_kill`` of ``memory.events``."""
        path = self.root / rel / "memory.events"
        return _counter(path, "oom_kill") if path.exists() else 0

    def remove(self, rel: str) -> None:
        """Remove ``rel``."""
        rmdir_group(self.root / rel)
        self._enabled.discard(self.root / rel)


def _mounts(text: str) -> list[tuple[Path, str, set[str]]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((Path(parts[1]), parts[2], set(parts[3].split(","))))
    return out


def _own_groups(text: str) -> dict[str, str]:
    """Controller -> this process's group path (``""`` for the v2 unified line)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def detect(
    *, mounts_text: str | None = None, cgroup_text: str | None = None
) -> tuple[Backend | None, str]:
    """The usable backend here, or None and why not (the text is read from ``/proc``)."""
    try:
        mounts_text = (
            mounts_text if mounts_text is not None else Path("/proc/self/mounts").read_text()
        )
        cgroup_text = (
            cgroup_text if cgroup_text is not None else Path("/proc/self/cgroup").read_text()
        )
    except OSError as exc:
        return None, f"no cgroup information ({exc}): not Linux?"
    mounts = _mounts(mounts_text)
    own = _own_groups(cgroup_text)
    problems: list[str] = []
    v1 = {opt: mp for mp, kind, opts in mounts if kind == "cgroup" for opt in opts}
    if "cpu" in v1 and "memory" in v1 and "cpu" in own and "memory" in own:
        cpu_root = v1["cpu"] / own["cpu"].lstrip("/")
        mem_root = v1["memory"] / own["memory"].lstrip("/")
        if os.access(cpu_root, os.W_OK) and os.access(mem_root, os.W_OK):
            return CgroupV1(cpu_root, mem_root), ""
        problems.append(f"cgroup v1 groups {cpu_root}, {mem_root} are not writable")
    for mp, kind, _ in mounts:
        if kind != "cgroup2" or "" not in own:
            continue
        root = mp / own[""].lstrip("/")
        try:
            controllers = (root / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if {"cpu", "memory"} <= set(controllers) and os.access(root, os.W_OK):
            return CgroupV2(root), ""
        problems.append(f"cgroup v2 at {root} does not delegate cpu and memory ({controllers})")
    return None, "; ".join(problems) or "no cgroup cpu and memory controllers mounted"
