"""Kernel-enforced resources for local function instances: memory buys CPU, as on Lambda.

A platform *profile* says how much CPU an instance of a given memory size gets; a *backend*
(:mod:`serverless_hpc.targets.cgroups`: ``cgroup-v2`` or ``cgroup-v1``) makes the kernel
enforce it on one instance process (and the memory limit with it). Where no group can be
made (no privilege, another OS), the ``fallback`` applies: CPU affinity to whole vCPUs
(``taskset``) and the memory check after each invocation. It is announced once.

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

import itertools
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from serverless_hpc.targets import cgroups
from serverless_hpc.targets.cgroups import Backend, Limits, ResourceError, detect

log = logging.getLogger(__name__)

PREFIX: Final = "shpc"
_GROUP_RE: Final = re.compile(rf"^{PREFIX}-(\d+)-(\d+)-\d+$")
_managers = itertools.count(1)


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
    #: :data:`~serverless_hpc.targets.cgroups.RESERVE_FACTOR`), as Lambda reserves an
    #: environment's CPU share.
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
                    cgroups.rmdir_group(entry)
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
        profile (:data:`~serverless_hpc.targets.cgroups.RESERVE_FACTOR`), and no memory
        limit. Every process started with :meth:`InstanceGroup.wrap` joins it, so the pool
        shares ``cpus`` as a VM's processes share its vCPUs, and neither it nor a function
        instance is favoured by the machine's other load."""
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
