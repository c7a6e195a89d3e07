"""Kernel-enforced resources for local function instances: memory buys CPU, as on Lambda.

A platform *profile* says how much CPU an instance of a given memory size gets; a *backend*
makes the kernel enforce it on one instance process (and the memory limit with it):

* ``cgroup-v2``: a group per instance under a per-driver parent in this process's own
  (delegated) v2 group: ``cpu.max`` (quota, with a high ``cpu.weight`` so the quota is also
  a reservation, see :data:`RESERVE_FACTOR`) or ``cpu.weight`` alone (share),
  ``memory.max`` with ``memory.swap.max = 0``; kernel OOM kills are read from
  ``memory.events``.
* ``cgroup-v1``: the same in the ``cpu`` and ``memory`` hierarchies: ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` (and ``cpu.shares``) or ``cpu.shares`` alone, ``memory.limit_in_bytes`` plus
  ``memory.memsw.limit_in_bytes`` (so swap cannot hide the limit); OOM kills from
  ``memory.oom_control``.
* ``fallback``, where no group can be made (no privilege, another OS): CPU affinity to whole
  vCPUs (``taskset``) and the memory check after each invocation. It is announced once.

The child is placed in its group *before* it runs any Python: :meth:`InstanceGroup.wrap`
returns an argv prefix (``/bin/sh`` writing its own pid into ``cgroup.procs``, then ``exec``),
so the cold start itself runs under the quota. Every record carries
:meth:`InstanceGroup.enforcement`, naming what applied, so no figure passes for what it is not.

Groups are named ``shpc-<pid-namespace>-<driver pid>-<manager>/i<n>`` (one parent per
:class:`ResourceManager`, so two targets of one driver never share or remove each other's
groups): :meth:`ResourceManager.open`
removes the groups of drivers of this pid namespace that are no longer alive (a crash leaves
them behind), :meth:`ResourceManager.close` removes this driver's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

PREFIX: Final = "shpc"
#: The CFS period (the kernel's default); a quota of ``cpus`` is ``cpus * period``.
CFS_PERIOD_US: Final = 100_000
#: A quota is a cap; Lambda also *reserves* the share. A group with a quota therefore gets a
#: weight this many times its CPUs' worth (v1 ``cpu.shares`` of 1024 per CPU, capped at the
#: kernel's maximum), so processes outside the emulator cannot starve an instance below its
#: quota. It never lets an instance use more than its quota.
RESERVE_FACTOR: Final = 64
_GROUP_RE: Final = re.compile(rf"^{PREFIX}-(\d+)-(\d+)-\d+$")
_managers = itertools.count(1)
#: Bound on waiting for a just-killed instance's group to empty before ``rmdir``.
RMDIR_DEADLINE_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Profile:
    """How a platform turns an instance's memory size into CPU.

    ``mode`` is ``"quota"`` (a hard cap of ``cpus`` CPUs, Lambda's behaviour), ``"share"``
    (a weight: ``cpus`` is the CPU the instance gets when every slot is busy; idle CPU is
    still used, as Docker's ``--cpu-shares`` does) or ``"none"`` (no CPU control, no kernel
    memory limit: the emulator's behaviour before profiles).
    """

    name: str
    mode: str
    mb_per_cpu: float | None
    max_cpus: float | None
    min_cpus: float
    source: str
    #: Quota mode: also give the group a high weight, so the quota is a reservation (see
    #: :data:`RESERVE_FACTOR`), as Lambda reserves an environment's CPU share.
    reserve: bool = False

    def cpus(self, memory_mb: int) -> float | None:
        """The CPUs an instance of ``memory_mb`` gets, or None without CPU control."""
        if self.mode == "none" or self.mb_per_cpu is None:
            return None
        cpus = max(self.min_cpus, memory_mb / self.mb_per_cpu)
        return min(cpus, self.max_cpus) if self.max_cpus is not None else cpus


#: Platform profiles, as data. Sources are in ``source``; the README repeats them.
PROFILES: Final[dict[str, Profile]] = {
    "lambda": Profile(
        name="lambda",
        mode="quota",
        mb_per_cpu=1769.0,
        max_cpus=6.0,
        min_cpus=0.01,
        reserve=True,
        source="AWS Lambda docs (configuration-memory): 1,769 MB has the equivalent of one "
        "vCPU; CPU is allocated in proportion to memory, up to 6 vCPUs at 10,240 MB",
    ),
    "openwhisk": Profile(
        name="openwhisk",
        mode="share",
        mb_per_cpu=1024.0,
        max_cpus=None,
        min_cpus=2 / 1024,
        source="Apache OpenWhisk invoker ContainerPoolConfig.cpuShare: docker --cpu-shares = "
        "1024 * memory / user-memory (min 2), user-memory 1024 MB by default "
        "(core/invoker application.conf): a 256 MB action weighs a quarter of one core",
    ),
    "none": Profile(
        name="none",
        mode="none",
        mb_per_cpu=None,
        max_cpus=None,
        min_cpus=0.0,
        source="no CPU control and no kernel memory limit (memory checked after invocations)",
    ),
}
DEFAULT_PROFILE: Final = "lambda"


def profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` naming the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown resource profile {name!r} (known: {', '.join(PROFILES)})"
        ) from None


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


def _rmdir_group(path: Path, deadline_s: float = RMDIR_DEADLINE_S) -> None:
    """``rmdir`` a cgroup, killing stragglers and retrying (bounded) while it is busy."""
    try:  # a group may go while it is listed (its instance's own clean-up removed it)
        children = sorted((p for p in path.iterdir() if p.is_dir()), reverse=True)
    except FileNotFoundError:
        return
    for child in children:
        _rmdir_group(child, deadline_s)
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
            _rmdir_group(root / rel)


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
        _rmdir_group(self.root / rel)
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


def _pidns() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InstanceGroup:
    """One instance's resources: how to start it inside them, what applied, OOM kills."""

    def __init__(
        self,
        *,
        manager: ResourceManager,
        rel: str | None,
        procs: Sequence[Path],
        enforcement: dict[str, Any],
        prefix: Sequence[str] = (),
        setup_ms: float = 0.0,
    ) -> None:
        self._manager = manager
        self.rel = rel
        self.procs = list(procs)
        self.enforcement = enforcement
        self._prefix = list(prefix)
        self.setup_ms = setup_ms
        self._oom_base = 0

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside the group: ``/bin/sh`` joins it, then ``exec``s ``argv``.

        The shell writes its own pid (the one ``exec`` keeps) into every ``cgroup.procs``
        before the interpreter starts, so no instance code runs outside its limits; a failed
        write exits the shell (``set -e``), and the instance is reported as failed to start.
        """
        out = [*self._prefix, *argv]
        if not self.procs:
            return out
        script = 'set -e; while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *map(str, self.procs), "--", *out]

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process of this group since the last call."""
        if self.rel is None or self._manager.backend is None:
            return False
        try:
            count = self._manager.backend.oom_kills(self.rel)
        except ResourceError:
            log.exception("cannot read the OOM count of %s", self.rel)
            return False
        killed = count > self._oom_base
        self._oom_base = count
        return killed

    def remove(self) -> None:
        """Remove the group (after its process is gone)."""
        self._manager.remove(self)


class ResourceManager:
    """Creates, tracks and removes the instance groups of one driver; see the module docstring.

    ``backend`` None means detect; pass one (a fake v2 tree in tests) to force it. When
    ``profile`` is ``none`` no group is made at all.
    """

    def __init__(
        self,
        prof: Profile,
        *,
        backend: Backend | None = None,
        detector: Callable[[], tuple[Backend | None, str]] = detect,
        driver_pid: int | None = None,
        machine_cpus: int | None = None,
        label: str = "local-faas",
    ) -> None:
        self.profile = prof
        self.label = label
        self.backend = backend
        self._detector = detector if backend is None else None
        self.fallback_reason = ""
        self.driver_pid = driver_pid if driver_pid is not None else os.getpid()
        self.parent = f"{PREFIX}-{_pidns()}-{self.driver_pid}-{next(_managers)}"
        self.machine_cpus = machine_cpus or len(os.sched_getaffinity(0))
        self._lock = threading.Lock()
        self._next = 0
        self._live: set[str] = set()

    def open(self) -> None:
        """Pick the backend (saying once why a fallback applies) and sweep dead drivers' groups."""
        if self.profile.mode == "none":
            return
        if self._detector is not None:
            self.backend, self.fallback_reason = self._detector()
            self._detector = None
        if self.backend is None:
            log.warning(
                "%s: no control group can be created here (%s); falling back to CPU "
                "affinity for whole vCPUs and the memory check after each invocation",
                self.label,
                self.fallback_reason,
            )
            return
        self.sweep()
        try:  # a probe group: creating one is the only proof that the limits can be set
            self.backend.create(f"{self.parent}/probe", self.limits(256))
            self.backend.remove(f"{self.parent}/probe")
        except (ResourceError, OSError) as exc:
            self.fallback_reason = f"{self.backend.name}: {exc}"
            try:
                self.backend.remove(self.parent)
            except ResourceError:
                log.exception("cannot remove %s", self.parent)
            self.backend = None
            log.warning(
                "%s: no control group can be created here (%s); falling back to CPU "
                "affinity for whole vCPUs and the memory check after each invocation",
                self.label,
                self.fallback_reason,
            )

    def sweep(self) -> list[Path]:
        """Remove groups left by drivers of this pid namespace that are no longer alive."""
        if self.backend is None:
            return []
        removed = []
        ns = str(_pidns())
        for root in self.backend.parents():
            if not root.is_dir():
                continue
            for entry in root.iterdir():
                m = _GROUP_RE.match(entry.name)
                if not m or m.group(1) != ns or not entry.is_dir():
                    continue
                if _alive(int(m.group(2))):
                    continue
                try:
                    _rmdir_group(entry)
                    removed.append(entry)
                except ResourceError:
                    log.exception("cannot remove leftover group %s", entry)
        if removed:
            log.warning("removed %d leftover group(s) of dead drivers", len(removed))
        return removed

    def limits(self, memory_mb: int) -> Limits:
        """What an instance of ``memory_mb`` gets under the profile."""
        enforce_memory = self.profile.mode != "none"
        return Limits(
            cpus=self.profile.cpus(memory_mb),
            cpu_mode=self.profile.mode,
            memory_mb=memory_mb if enforce_memory else None,
            reserve=self.profile.reserve,
        )

    def pool_group(self, cpus: float) -> InstanceGroup:
        """One group for a pool of long-lived processes (``standalone``'s VM): a quota of
        ``cpus`` with the weight a function instance of that many CPUs gets under a reserving
        profile (:data:`RESERVE_FACTOR`), and no memory limit. Every process started with
        :meth:`InstanceGroup.wrap` joins it, so the pool shares ``cpus`` as a VM's processes
        share its vCPUs, and neither it nor a function instance is favoured by the machine's
        other load."""
        if cpus <= 0:
            raise ResourceError(f"a pool needs a positive CPU count, got {cpus}")
        group = self._make(Limits(cpus=cpus, cpu_mode="quota", memory_mb=None, reserve=True))
        group.enforcement["memory"] = "none"  # a VM's processes share its memory
        return group

    def group_for(self, memory_mb: int) -> InstanceGroup:
        """Create the resources of a new instance of ``memory_mb`` (before it is spawned)."""
        return self._make(self.limits(memory_mb))

    def _make(self, limits: Limits) -> InstanceGroup:
        """A new group with ``limits`` (or the fallback, or nothing under the ``none`` profile)."""
        base: dict[str, Any] = {"profile": self.profile.name, "cpus": limits.cpus}
        with self._lock:
            self._next += 1
            index = self._next
        if self.profile.mode == "none":
            return InstanceGroup(
                manager=self,
                rel=None,
                procs=(),
                enforcement={**base, "cpu": "none", "memory": "post-invocation-check"},
            )
        if self.backend is None:
            return self._fallback(limits, base, index)
        rel = f"{self.parent}/i{index}"
        t0 = time.perf_counter_ns()
        with self._lock:
            self._live.add(rel)
        try:
            procs, enforcement = self.backend.create(rel, limits)
        except (ResourceError, OSError) as exc:
            self._remove_rel(rel)
            raise ResourceError(f"cannot set up {self.backend.name} group {rel}: {exc}") from exc
        return InstanceGroup(
            manager=self,
            rel=rel,
            procs=procs,
            enforcement={**base, **enforcement},
            setup_ms=(time.perf_counter_ns() - t0) / 1e6,
        )

    def _fallback(self, limits: Limits, base: dict[str, Any], index: int) -> InstanceGroup:
        """Affinity to whole vCPUs (quota mode, with ``taskset``) and the post-check."""
        enforcement = {**base, "cpu": "none", "memory": "post-invocation-check"}
        prefix: list[str] = []
        taskset = shutil.which("taskset")
        if limits.cpus is not None and limits.cpu_mode == "quota" and taskset:
            cpus = sorted(os.sched_getaffinity(0))
            n = min(len(cpus), max(1, round(limits.cpus)))
            start = (index * n) % len(cpus)
            chosen = [cpus[(start + i) % len(cpus)] for i in range(n)]
            prefix = [taskset, "-c", ",".join(map(str, chosen))]
            enforcement.update(cpu=f"affinity-{n}", cpus=float(n))
        return InstanceGroup(
            manager=self, rel=None, procs=(), enforcement=enforcement, prefix=prefix
        )

    def remove(self, group: InstanceGroup) -> None:
        """Remove one instance's group; a failure is logged (close retries the parent)."""
        if group.rel is not None:
            self._remove_rel(group.rel)

    def _remove_rel(self, rel: str) -> None:
        if self.backend is None:
            return
        try:
            self.backend.remove(rel)
        except ResourceError:
            log.exception("cannot remove group %s", rel)
            return
        with self._lock:
            self._live.discard(rel)

    def live(self) -> set[str]:
        """Groups created and not yet removed."""
        with self._lock:
            return set(self._live)

    def close(self) -> None:
        """Remove every group of this driver and the per-driver parent."""
        if self.backend is None:
            return
        for rel in sorted(self.live()):
            self._remove_rel(rel)
        self._remove_rel(self.parent)


def capacity_cpus() -> int:
    """The CPUs this process may run on (the machine's capacity for in-flight quotas)."""
    return len(os.sched_getaffinity(0))
