"""``local-faas``'s function instances: one OS process each, as a Lambda execution
environment is, in its own resource group (:mod:`serverless_hpc.targets.resources`).

Every instance is in exactly one of: idle, busy, starting (a reserved slot whose process
is being spawned) or retiring (being killed). All four count against the concurrency
cap, so the cap bounds live processes, not only bookkeeping. A finished instance stays
idle for ``keep_alive_s`` and serves the next invocation of the same function and memory
size (most recently used first, which keeps the pool small); an idle instance of another
function is retired to make room.
"""

from __future__ import annotations

import threading
import time
from typing import IO

from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.process import ReadyInfo, WorkerProcess
from serverless_hpc.targets.resources import InstanceGroup, ResourceManager


class Throttled(Exception):
    """No instance could be had before the deadline: the concurrency cap was reached."""


class Closed(Exception):
    """The target was closed while the invocation waited or started."""


class InstancePool:
    """The instances of one ``local-faas`` target; see the module docstring.

    ``platform`` names the instances' platform; ``resources`` makes each one's group;
    ``settings`` gives their environment and init timeout.
    """

    def __init__(
        self,
        *,
        platform: str,
        resources: ResourceManager,
        settings: TargetSettings,
        concurrency: int,
        keep_alive_s: float,
    ) -> None:
        self.platform = platform
        self.resources = resources
        self.settings = settings
        self.concurrency = concurrency
        self.keep_alive_s = keep_alive_s
        self._groups: dict[WorkerProcess, tuple[InstanceGroup, int]] = {}
        self._cv = threading.Condition()
        self._idle: list[WorkerProcess] = []  # most recently used last
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._retiring = 0
        self._closed = False
        self.cold_starts = 0

    def close(self) -> None:
        """Kill every instance, busy ones included; a later :meth:`acquire` raises
        :class:`Closed`, and so does a :meth:`start` under way."""
        with self._cv:
            self._closed = True
            victims = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
            self._cv.notify_all()
        for worker in victims:
            self._dispose(worker)

    def _dispose(self, worker: WorkerProcess) -> None:
        """Kill an instance and remove its group."""
        worker.kill()
        with self._cv:
            entry = self._groups.pop(worker, None)
        if entry is not None:
            entry[0].remove()

    def idle_count(self) -> int:
        """Idle instances right now, after retiring the expired ones."""
        with self._cv:
            expired = self._take_expired_locked()
        self.retire(expired)
        with self._cv:
            return len(self._idle)

    def _slots_locked(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting + self._retiring

    def _take_expired_locked(self) -> list[WorkerProcess]:
        """Remove idle instances past keep-alive (or dead) and mark them retiring."""
        now = time.monotonic()
        expired = [w for w in self._idle if now - w.last_used > self.keep_alive_s or not w.alive()]
        for worker in expired:
            self._idle.remove(worker)
        self._retiring += len(expired)
        return expired

    def retire(self, victims: list[WorkerProcess]) -> None:
        """Kill ``victims`` (marked retiring) now; their slots free up when they are gone."""
        for worker in victims:
            self._dispose(worker)
        if victims:
            with self._cv:
                self._retiring -= len(victims)
                self._cv.notify_all()

    def acquire(
        self, workload: str, memory_mb: int, deadline: float, force_cold: bool
    ) -> tuple[WorkerProcess | None, bool, list[WorkerProcess]]:
        """``(instance, reserved, victims)``: a busy-marked idle instance of ``workload``, or
        ``reserved`` True when a starting slot was reserved for a new one.

        Also returns instances to retire (expired, or evicted to make room), which the
        caller kills before it spawns, so the new process never exceeds the cap. When only
        victims come back (nothing reserved yet), the caller kills them and asks again.
        """
        victims: list[WorkerProcess] = []
        with self._cv:
            while True:
                if self._closed:
                    if victims:  # taken off the idle list and counted retiring: kill first
                        return None, False, victims
                    raise Closed
                victims += self._take_expired_locked()
                if not force_cold:
                    for worker in reversed(self._idle):
                        if worker.workload == workload and self._size(worker) == memory_mb:
                            self._idle.remove(worker)
                            self._busy.add(worker)
                            return worker, False, victims
                if self._slots_locked() < self.concurrency:
                    self._starting += 1
                    return None, True, victims
                other = next(
                    (
                        w
                        for w in self._idle
                        if w.workload != workload or force_cold or self._size(w) != memory_mb
                    ),
                    None,
                )
                if other is not None:
                    self._idle.remove(other)
                    self._retiring += 1
                    victims.append(other)
                    continue  # the slot frees once it is killed, but it is ours to count on
                if victims:
                    return None, False, victims  # kill them before waiting; caller asks again
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Throttled
                self._cv.wait(remaining)

    def _size(self, worker: WorkerProcess) -> int | None:
        """The memory size ``worker`` was started with (call with the lock held)."""
        entry = self._groups.get(worker)
        return entry[1] if entry is not None else None

    def start(
        self, workload: str, memory_mb: int, *, stderr: IO[bytes] | None
    ) -> tuple[WorkerProcess, ReadyInfo]:
        """Create the instance's group, spawn it inside, and wait until it is ready."""
        worker: WorkerProcess | None = None
        group: InstanceGroup | None = None
        try:
            group = self.resources.group_for(memory_mb)
            worker = WorkerProcess(
                platform=self.platform,
                workload=workload,
                memory_mb=memory_mb,
                env=self.settings.worker_env(),
                stderr=stderr,
                launcher=group.wrap,
            )
            with self._cv:
                self._groups[worker] = (group, memory_mb)
            ready = worker.wait_ready(self.settings.init_timeout_s)
        except BaseException:
            with self._cv:
                self._starting -= 1
                self._cv.notify_all()
            if worker is not None:
                self._dispose(worker)
            elif group is not None:
                group.remove()
            raise
        with self._cv:
            self._starting -= 1
            closed = self._closed
            if not closed:
                self._busy.add(worker)
                self.cold_starts += 1
            self._cv.notify_all()
        if closed:
            self._dispose(worker)
            raise Closed
        return worker, ready

    def release(self, worker: WorkerProcess, *, keep: bool) -> None:
        """Return a busy instance to the idle list, or kill it."""
        with self._cv:
            self._busy.discard(worker)
            keep = keep and not self._closed and worker.alive()
            if keep:
                self._idle.append(worker)
            else:
                self._retiring += 1
            self._cv.notify_all()
        if not keep:
            self.retire([worker])

    def group_of(self, worker: WorkerProcess) -> InstanceGroup | None:
        """The resource group ``worker`` runs in (None once it is disposed of)."""
        with self._cv:
            entry = self._groups.get(worker)
        return entry[0] if entry is not None else None

    def busy(self) -> list[WorkerProcess]:
        """The instances running an invocation right now."""
        with self._cv:
            return list(self._busy)
