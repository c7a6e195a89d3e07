"""``standalone``: a fixed pool of worker processes sized to the machine, like a VM.

This is what the EC2 comparison instance runs: the workers start once, before the benchmark,
and stay up, so only the first invocation of each workload in each worker pays the library
imports and model load (reported as its cold start). Invocations beyond the pool size wait
for a free worker.
"""

from __future__ import annotations

import logging
import os
import queue
from typing import IO, Any

from serverless_hpc.contract import TIMEOUT, error_response
from serverless_hpc.targets.base import Outcome, Target, TargetUnavailable
from serverless_hpc.targets.process import (
    WorkerDied,
    WorkerProcess,
    WorkerTimeout,
    call_or_error,
    open_log,
)
from serverless_hpc.workloads.base import available_cpus

log = logging.getLogger(__name__)


def machine_memory_mb() -> int | None:
    """Physical memory of this machine in MB (Linux), for the record's memory column."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return int(pages * size / 2**20)


class StandaloneTarget(Target):
    """Shards run in parallel on ``concurrency`` (default: CPU count) long-lived processes."""

    name = "standalone"

    def __init__(self, settings: Any, *, platform: str | None = None) -> None:
        """``platform`` names where the pool runs in responses (the EC2 runner says "ec2")."""
        super().__init__(settings)
        self.platform = platform or self.name
        self.workers = settings.concurrency or available_cpus()
        if self.workers < 1:
            raise TargetUnavailable(f"standalone: concurrency must be >= 1, got {self.workers}")
        self._idle: queue.LifoQueue[WorkerProcess] = queue.LifoQueue()
        self._all: list[WorkerProcess] = []
        self._log: IO[bytes] | None = None

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(
            platform=self.platform,
            memory_mb=machine_memory_mb(),
            env=self.settings.worker_env(),
            stderr=self._log,
        )
        try:
            worker.wait_ready(self.settings.init_timeout_s)
        except (WorkerDied, WorkerTimeout) as exc:
            worker.kill()
            raise TargetUnavailable(f"standalone: a worker failed to start: {exc}") from exc
        self._all.append(worker)
        return worker

    def open(self) -> None:
        """Start every worker and wait until all are ready."""
        self._log = open_log(self.settings.log_dir, self.name)
        for _ in range(self.workers):
            self._idle.put(self._spawn())
        log.info("standalone: %d workers ready", self.workers)

    def close(self) -> None:
        """Stop every worker."""
        for worker in self._all:
            worker.stop()
        self._all.clear()
        if self._log is not None:
            self._log.close()

    @property
    def max_parallel(self) -> int:
        """The pool size: more in flight would only queue."""
        return self.workers

    def describe(self) -> dict[str, Any]:
        """Pool size and machine memory."""
        return {"workers": self.workers, "memory_mb": machine_memory_mb()}

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """Run ``request`` on the next free worker; replace a worker that timed out or died."""
        try:
            worker = self._idle.get(timeout=timeout_s)
        except queue.Empty:
            msg = f"no standalone worker free within {timeout_s:g} s"
            return Outcome(response=error_response(TIMEOUT, msg), cold=False)
        response, reply = call_or_error(worker, request, timeout_s)
        if reply is None:  # the worker was killed (timeout) or died: replace it
            self._all.remove(worker)
            try:
                self._idle.put(self._spawn())
            except TargetUnavailable:
                log.exception("standalone: could not replace worker %d; pool shrinks", worker.pid)
            return Outcome(response=response, cold=False, instance=str(worker.pid))
        self._idle.put(worker)
        cold = bool(reply.get("first_of_workload"))
        preload = float(reply.get("preload_ms") or 0.0)
        timings = response.get("timings", {}) if response.get("ok") else {}
        breakdown = {}
        if cold:
            breakdown = {
                "import_ms": preload,
                "model_load_ms": float(timings.get("load_ms", 0.0)),
                "first_inference_ms": float(timings.get("compute_ms", 0.0)),
            }
        return Outcome(
            response=response,
            cold=cold,
            init_ms=preload if cold else None,
            duration_ms=float(reply["duration_ms"]) - preload,
            memory_mb=machine_memory_mb(),
            max_rss_mb=float(reply["max_rss_mb"]),
            breakdown=breakdown,
            instance=str(worker.pid),
        )
