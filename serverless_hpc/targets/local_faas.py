"""``local-faas``: serverless semantics on one machine, the embedded default.

Each workload is a *function*; each function instance is its own OS process running the
shared handler, as a Lambda execution environment is. The platform rules emulated:

* **Cold start**: an invocation with no idle instance of its function starts a new process.
  Its init (process start, core imports, the workload's library imports) is measured from
  spawn to ready and reported as ``init_ms``; the first invocation's model load and first
  inference are reported next to it, so the whole cold start is broken down.
* **Warm reuse**: a finished instance stays idle for ``keep_alive_s`` and serves the next
  invocation of the same function (most recently used first, which keeps the pool small).
* **Concurrency cap**: at most ``concurrency`` instances exist at once. An invocation that
  finds none free waits, bounded by its timeout (Lambda would throttle and the client retry);
  an idle instance of another function is retired to make room.
* **Timeout**: an invocation that runs past its timeout kills its instance and is recorded as
  ``Timeout``, as Lambda does.
* **Memory**: an instance whose peak RSS exceeds ``memory_mb`` is retired and the invocation
  recorded as ``OutOfMemory``. Unlike Lambda, the limit is checked after the invocation
  rather than enforced by the kernel during it.
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
    TIMEOUT,
    ContractError,
    error_response,
)
from serverless_hpc.targets.base import Outcome, Target, TargetSettings, TargetUnavailable
from serverless_hpc.targets.process import (
    WorkerDied,
    WorkerProcess,
    WorkerTimeout,
    call_or_error,
    open_log,
)
from serverless_hpc.workloads.base import available_cpus

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 2048
#: Training imports TensorFlow (~540 MB RSS here) and holds the 60k set: give it more room.
DEFAULT_MEMORY_BY_WORKLOAD = {"train": 4096}


class _Starting:
    """Placeholder that holds a concurrency slot while an instance is being spawned."""


class LocalFaasTarget(Target):
    """Function instances as processes with cold/warm accounting; see the module docstring."""

    name = "local-faas"
    supports_forced_cold = True

    def __init__(self, settings: TargetSettings) -> None:
        super().__init__(settings)
        self.concurrency = settings.concurrency or max(2, available_cpus())
        if self.concurrency < 1:
            raise TargetUnavailable(f"local-faas: concurrency must be >= 1, got {self.concurrency}")
        if settings.memory_mb is not None and settings.memory_mb < 128:
            raise TargetUnavailable(
                f"local-faas: memory_mb must be >= 128, got {settings.memory_mb}"
            )
        self.keep_alive_s = settings.keep_alive_s
        self._cv = threading.Condition()
        self._idle: list[WorkerProcess] = []  # most recently used last
        self._slots = 0  # instances alive or starting
        self._log: IO[bytes] | None = None
        self.cold_starts = 0

    def open(self) -> None:
        """Open the workers' log; instances start on demand."""
        self._log = open_log(self.settings.log_dir, self.name)

    def close(self) -> None:
        """Stop every idle instance (busy ones are finished by their invoker)."""
        with self._cv:
            idle, self._idle = self._idle, []
            self._slots -= len(idle)
        for worker in idle:
            worker.stop()
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
        """Idle instances right now (tests and the report use it)."""
        with self._cv:
            self._reap_locked()
            return len(self._idle)

    def _reap_locked(self) -> None:
        now = time.monotonic()
        expired = [w for w in self._idle if now - w.last_used > self.keep_alive_s or not w.alive()]
        for worker in expired:
            self._idle.remove(worker)
            self._slots -= 1
            threading.Thread(target=worker.stop, daemon=True).start()

    def _acquire(self, workload: str, deadline: float, force_cold: bool) -> WorkerProcess | None:
        """An idle instance of ``workload``, or None after reserving a slot for a new one."""
        with self._cv:
            while True:
                self._reap_locked()
                if not force_cold:
                    for worker in reversed(self._idle):
                        if worker.workload == workload:
                            self._idle.remove(worker)
                            return worker
                if self._slots < self.concurrency:
                    self._slots += 1
                    return None
                other = next((w for w in self._idle if w.workload != workload or force_cold), None)
                if other is not None:
                    self._idle.remove(other)
                    threading.Thread(target=other.stop, daemon=True).start()
                    return None  # its slot passes to the new instance
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerTimeout(
                        f"no local-faas instance free within the timeout "
                        f"(concurrency cap {self.concurrency})"
                    )
                self._cv.wait(remaining)

    def _release(self, worker: WorkerProcess | None, *, keep: bool) -> None:
        with self._cv:
            if keep and worker is not None and worker.alive():
                self._idle.append(worker)
            else:
                self._slots -= 1
                if worker is not None:
                    threading.Thread(target=worker.kill, daemon=True).start()
            self._cv.notify_all()

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
        try:
            worker = self._acquire(workload, deadline, force_cold)
        except WorkerTimeout as exc:
            return Outcome(response=error_response(TIMEOUT, str(exc)), cold=False)
        cold = worker is None
        if worker is None:
            try:
                worker = WorkerProcess(
                    platform=self.name,
                    workload=workload,
                    memory_mb=memory_mb,
                    env=self.settings.worker_env(),
                    stderr=self._log,
                )
                ready = worker.wait_ready(self.settings.init_timeout_s)
            except (WorkerDied, WorkerTimeout, OSError) as exc:
                self._release(worker, keep=False)
                msg = f"function instance failed to initialise: {exc}"
                return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=True)
            with self._cv:
                self.cold_starts += 1
        response, reply = call_or_error(worker, request, timeout_s)
        if reply is None:
            self._release(worker, keep=False)
            return Outcome(
                response=response, cold=cold, memory_mb=memory_mb, instance=str(worker.pid)
            )
        max_rss = float(reply["max_rss_mb"])
        over = max_rss > memory_mb
        if over:
            response = error_response(
                OUT_OF_MEMORY, f"peak memory {max_rss:.0f} MB exceeded the {memory_mb} MB setting"
            )
        self._release(worker, keep=not (force_cold or over))
        duration_ms = float(reply["duration_ms"])
        init_ms = ready.init_ms if cold else None
        breakdown: dict[str, float] = {}
        if cold:
            timings = response.get("timings", {}) if response.get("ok") else {}
            breakdown = {
                "process_start_ms": ready.process_start_ms,
                "import_ms": ready.import_ms + ready.preload_ms,
                "model_load_ms": float(timings.get("load_ms", 0.0)),
                "first_inference_ms": float(timings.get("compute_ms", 0.0)),
            }
        billed = math.ceil(duration_ms + (init_ms or 0.0))
        return Outcome(
            response=response,
            cold=cold,
            init_ms=init_ms,
            duration_ms=duration_ms,
            billed_ms=float(billed),
            memory_mb=memory_mb,
            max_rss_mb=max_rss,
            breakdown=breakdown,
            instance=str(worker.pid),
        )
