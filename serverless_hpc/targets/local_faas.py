"""``local-faas``: serverless semantics on one machine, the embedded default.

Each workload is a *function*; each function instance is its own OS process running the
shared handler, as a Lambda execution environment is. The platform rules emulated:

* **Cold start**: an invocation with no idle instance of its function starts a new process.
  Its init (process start, core imports, the workload's library imports) is measured from
  spawn to ready and reported as ``init_ms``; the first invocation's model load and first
  inference are reported next to it, so the whole cold start is broken down.
* **Warm reuse**: a finished instance stays idle for ``keep_alive_s`` and serves the next
  invocation of the same function (most recently used first, which keeps the pool small).
* **Concurrency cap**: at most ``concurrency`` instance processes exist at once. An
  invocation that finds none free waits, bounded by its timeout, and is then recorded as
  ``Throttled`` (Lambda would answer 429 and the client retry); an idle instance of another
  function is retired to make room.
* **Timeout**: an invocation that runs past its timeout kills its instance and is recorded as
  ``Timeout``, billed for the whole timeout, as Lambda does.
* **Memory**: an instance whose peak RSS during an invocation exceeds ``memory_mb`` is
  retired and the invocation recorded as ``OutOfMemory``. Unlike Lambda, the limit is
  checked after the invocation rather than enforced by the kernel during it. ``max_rss_mb``
  is the peak during the invocation (resident baseline included); Lambda's "Max Memory Used"
  is the environment's lifetime peak, which is never lower.
* **Billing**: ``billed_ms`` is duration (plus init on a cold start) rounded up to 1 ms, as
  Lambda bills since it started billing the init phase.
* **Forced cold**: ``force_cold=True`` starts a fresh instance and retires it afterwards, for
  cold-start measurements.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import IO, Any

from serverless_hpc import workloads
from serverless_hpc.contract import (
    OUT_OF_MEMORY,
    PLATFORM_ERROR,
    THROTTLED,
    TIMEOUT,
    ContractError,
    error_response,
)
from serverless_hpc.host import available_cpus
from serverless_hpc.invocation import Outcome, Phase, first_call_phases
from serverless_hpc.targets.base import Target, TargetSettings
from serverless_hpc.targets.process import (
    ReadyInfo,
    WorkerDied,
    WorkerProcess,
    WorkerTimeout,
    call_or_error,
    open_log,
)

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 2048
#: Training imports TensorFlow (~540 MB RSS here) and holds the 60k set: give it more room.
DEFAULT_MEMORY_BY_WORKLOAD = {"train": 4096}


class _Throttled(Exception):
    """No instance could be had before the deadline: the concurrency cap was reached."""


class _Closed(Exception):
    """The target was closed while the invocation waited or started."""


class LocalFaasTarget(Target):
    """Function instances as processes with cold/warm accounting; see the module docstring.

    Every instance is in exactly one of: idle, busy, starting (a reserved slot whose process
    is being spawned) or retiring (being killed). All four count against the concurrency
    cap, so the cap bounds live processes, not only bookkeeping.
    """

    name = "local-faas"
    supports_forced_cold = True

    def __init__(self, settings: TargetSettings) -> None:
        super().__init__(settings)
        cap = settings.concurrency
        self.concurrency = cap if cap is not None else max(2, available_cpus())
        self.keep_alive_s = settings.keep_alive_s
        self._cv = threading.Condition()
        self._idle: list[WorkerProcess] = []  # most recently used last
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._retiring = 0
        self._closed = False
        self._log: IO[bytes] | None = None
        self.cold_starts = 0

    def open(self) -> None:
        """Open the workers' log; instances start on demand."""
        self._log = open_log(self.settings.log_dir, self.name)

    def close(self) -> None:
        """Kill every instance, busy ones included; later invocations are refused.

        An invocation in flight then fails at once (its instance is gone) instead of keeping
        a process alive after the run.
        """
        with self._cv:
            self._closed = True
            victims = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
            self._cv.notify_all()
        for worker in victims:
            worker.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def max_parallel(self) -> int:
        """The concurrency cap."""
        return self.concurrency

    def memory_for(self, workload: str) -> int:
        """The function's memory setting."""
        if self.settings.memory_mb is not None:
            return self.settings.memory_mb
        return DEFAULT_MEMORY_BY_WORKLOAD.get(workload, DEFAULT_MEMORY_MB)

    def describe(self) -> dict[str, Any]:
        """Concurrency cap, keep-alive and memory setting."""
        return {
            "concurrency": self.concurrency,
            "keep_alive_s": self.keep_alive_s,
            "memory_mb": self.settings.memory_mb,
        }

    def idle_count(self) -> int:
        """Idle instances right now, after retiring the expired ones."""
        with self._cv:
            expired = self._take_expired_locked()
        self._retire(expired)
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

    def _retire(self, victims: list[WorkerProcess]) -> None:
        """Kill ``victims`` (marked retiring) now; their slots free up when they are gone."""
        for worker in victims:
            worker.kill()
        if victims:
            with self._cv:
                self._retiring -= len(victims)
                self._cv.notify_all()

    def _acquire(
        self, workload: str, deadline: float, force_cold: bool
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
                    raise _Closed
                victims += self._take_expired_locked()
                if not force_cold:
                    for worker in reversed(self._idle):
                        if worker.workload == workload:
                            self._idle.remove(worker)
                            self._busy.add(worker)
                            return worker, False, victims
                if self._slots_locked() < self.concurrency:
                    self._starting += 1
                    return None, True, victims
                other = next((w for w in self._idle if w.workload != workload or force_cold), None)
                if other is not None:
                    self._idle.remove(other)
                    self._retiring += 1
                    victims.append(other)
                    continue  # the slot frees once it is killed, but it is ours to count on
                if victims:
                    return None, False, victims  # kill them before waiting; caller asks again
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Throttled
                self._cv.wait(remaining)

    def _start(self, workload: str, memory_mb: int) -> tuple[WorkerProcess, ReadyInfo]:
        """Spawn an instance for a reserved starting slot and wait until it is ready."""
        worker: WorkerProcess | None = None
        try:
            worker = WorkerProcess(
                platform=self.name,
                workload=workload,
                memory_mb=memory_mb,
                env=self.settings.worker_env(),
                stderr=self._log,
            )
            ready = worker.wait_ready(self.settings.init_timeout_s)
        except BaseException:
            with self._cv:
                self._starting -= 1
                self._cv.notify_all()
            if worker is not None:
                worker.kill()
            raise
        with self._cv:
            self._starting -= 1
            if self._closed:
                self._cv.notify_all()
                worker.kill()
                raise _Closed
            self._busy.add(worker)
            self.cold_starts += 1
        return worker, ready

    def _release(self, worker: WorkerProcess, *, keep: bool) -> None:
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
            self._retire([worker])

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """Run ``request`` on a warm instance of its function, or cold-start one."""
        try:
            workload = workloads.check_name(request.get("workload"))
        except ContractError as exc:  # no such function: nothing to start
            return Outcome(response=exc.to_response(), cold=False)
        memory_mb = self.memory_for(workload)
        deadline = time.monotonic() + timeout_s
        ready: ReadyInfo | None = None
        try:
            while True:
                worker, reserved, victims = self._acquire(workload, deadline, force_cold)
                self._retire(victims)
                if worker is not None:
                    break
                if reserved:
                    worker, ready = self._start(workload, memory_mb)
                    break
        except _Throttled:
            msg = (
                f"no local-faas instance free within the {timeout_s:g} s timeout "
                f"(concurrency cap {self.concurrency})"
            )
            return Outcome(response=error_response(THROTTLED, msg), cold=False)
        except _Closed:
            msg = "local-faas target is closed"
            return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=False)
        except (WorkerDied, WorkerTimeout, OSError) as exc:
            msg = f"function instance failed to initialise: {exc}"
            return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=True)
        return self._run_on(worker, ready, request, timeout_s, memory_mb, force_cold)

    def _run_on(
        self,
        worker: WorkerProcess,
        ready: ReadyInfo | None,
        request: dict[str, Any],
        timeout_s: float,
        memory_mb: int,
        force_cold: bool,
    ) -> Outcome:
        """Invoke on a busy instance and account for it; the instance is always released."""
        keep = False
        try:
            response, reply = call_or_error(worker, request, timeout_s)
            cold = ready is not None
            init_ms = ready.init_ms if ready is not None else None
            if reply is None:
                # Lambda bills a timed-out invocation for the whole timeout.
                timed_out = response.get("error", {}).get("type") == TIMEOUT
                duration = timeout_s * 1e3 if timed_out else None
                billed = math.ceil(duration + (init_ms or 0.0)) if duration is not None else None
                return Outcome(
                    response=response,
                    cold=cold,
                    init_ms=init_ms,
                    duration_ms=duration,
                    billed_ms=float(billed) if billed is not None else None,
                    memory_mb=memory_mb,
                    instance=str(worker.pid),
                )
            max_rss = float(reply["max_rss_mb"])
            if max_rss > memory_mb:
                response = error_response(
                    OUT_OF_MEMORY,
                    f"peak memory {max_rss:.0f} MB exceeded the {memory_mb} MB setting",
                )
            else:
                keep = not force_cold
            duration_ms = float(reply["duration_ms"])
            breakdown: dict[str, float] = {}
            if ready is not None:
                breakdown = {
                    Phase.PROCESS_START: ready.process_start_ms,
                    Phase.IMPORTS: ready.import_ms + ready.preload_ms,
                    **first_call_phases(response),
                }
            return Outcome(
                response=response,
                cold=cold,
                init_ms=init_ms,
                duration_ms=duration_ms,
                billed_ms=float(math.ceil(duration_ms + (init_ms or 0.0))),
                memory_mb=memory_mb,
                max_rss_mb=max_rss,
                breakdown=breakdown,
                instance=str(worker.pid),
            )
        finally:
            self._release(worker, keep=keep)
