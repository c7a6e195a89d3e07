"""``standalone``: a fixed pool of worker processes, like a VM.

This is what the EC2 comparison instance runs: the workers start once, before the benchmark,
and stay up, so only the first invocation of each workload in each worker pays the library
imports and model load (reported as its cold start). Invocations beyond the pool size wait
for a free worker.

On one machine beside ``local-faas`` it emulates the comparison VM: the whole pool runs in
one control group of the VM's vCPUs (the profile's ``vm_instance_type`` in the instance
catalogue, ``--target-opt standalone.vcpus=N`` to change it), capped at this machine's, with
the same CPU weight per vCPU as a ``local-faas`` instance
(:meth:`~serverless_hpc.targets.resources.ResourceManager.pool_group`). Neither side is then
favoured by the machine's other load, and local-faas against standalone is a like-for-like
emulation check, not a cloud measurement. On the EC2 instance itself (``platform="ec2"``)
the pool is the machine and is not confined.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from serverless_hpc.contract import PLATFORM_ERROR, TIMEOUT, error_response
from serverless_hpc.host import available_cpus, machine_memory_mb
from serverless_hpc.invocation import Outcome, Phase, first_call_phases
from serverless_hpc.targets import resources
from serverless_hpc.targets.base import Target, TargetUnavailable
from serverless_hpc.targets.cgroups import ResourceError
from serverless_hpc.targets.process import (
    WorkerDied,
    WorkerProcess,
    WorkerTimeout,
    call_or_error,
    open_log,
)

if TYPE_CHECKING:
    from serverless_hpc.store import Store

log = logging.getLogger(__name__)


class StandaloneTarget(Target):
    """Shards run in parallel on ``concurrency`` (default: CPU count) long-lived processes.

    A worker that times out or dies is replaced in the background, so the invocation that
    lost it is not charged for the new worker's start-up. ``close`` kills every worker, busy
    ones included, and later invocations are refused.
    """

    name = "standalone"
    kind = "vm"
    options = frozenset({"vcpus"})

    def __init__(
        self,
        settings: Any,
        *,
        platform: str | None = None,
        manager: resources.ResourceManager | None = None,
    ) -> None:
        """``platform`` names where the pool runs in responses (the EC2 runner says "ec2",
        and its pool is not confined); ``manager`` is a test seam (a fake cgroup tree)."""
        super().__init__(settings)
        self.platform = platform or self.name
        self.vm_vcpus: int | None = None
        self.vcpus = float(available_cpus())
        self.resources: resources.ResourceManager | None = None
        self._group: resources.InstanceGroup | None = None
        if self.platform == self.name:
            self.vm_vcpus = self._vm_vcpus()
            self.vcpus = float(min(self.vm_vcpus, available_cpus()))
            self.resources = manager or resources.ResourceManager(
                resources.profile(resources.DEFAULT_PROFILE), label=self.name
            )
        size = settings.concurrency
        self.workers = size if size is not None else max(1, round(self.vcpus))
        self._cv = threading.Condition()
        self._idle: list[WorkerProcess] = []  # most recently used last
        self._all: set[WorkerProcess] = set()
        self._respawning = 0
        self._closed = False
        self._log: IO[bytes] | None = None

    def _vm_vcpus(self) -> int:
        """The emulated VM's vCPUs: ``--target-opt vcpus``, else the comparison VM type's."""
        value = self.target_options().get("vcpus")
        if value is not None:
            try:
                vcpus = int(value)
            except ValueError:
                vcpus = 0
            if not 1 <= vcpus <= 448:
                raise TargetUnavailable(
                    f"standalone: --target-opt vcpus must be an integer 1..448, got {value!r}"
                )
            return vcpus
        from serverless_hpc.pricing import PriceError
        from serverless_hpc.pricing_data import comparison_vm

        try:
            return comparison_vm().vcpus
        except (PriceError, OSError, KeyError, ValueError) as exc:
            raise TargetUnavailable(f"standalone: no VM size to emulate: {exc}") from exc

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(
            platform=self.platform,
            memory_mb=machine_memory_mb(),
            env=self.settings.worker_env(),
            stderr=self._log,
            launcher=self._group.wrap if self._group is not None else None,
        )
        try:
            worker.wait_ready(self.settings.init_timeout_s)
        except (WorkerDied, WorkerTimeout) as exc:
            worker.kill()
            raise TargetUnavailable(f"standalone: a worker failed to start: {exc}") from exc
        return worker

    def _add(self, worker: WorkerProcess) -> None:
        with self._cv:
            if self._closed:
                worker.kill()
                return
            self._all.add(worker)
            self._idle.append(worker)
            self._cv.notify()

    def _respawn(self) -> None:
        """Replace a lost worker (runs in a background thread)."""
        try:
            worker = self._spawn()
        except TargetUnavailable:
            log.exception("standalone: could not replace a worker; the pool shrinks")
            worker = None
        with self._cv:
            self._respawning -= 1
            self._cv.notify_all()
        if worker is not None:
            self._add(worker)

    def open(self) -> None:
        """Confine the pool (local emulation only), start every worker, wait until all are
        ready."""
        self._log = open_log(self.settings.log_dir, self.name)
        if self.resources is not None:
            self.resources.open()
            try:
                self._group = self.resources.pool_group(self.vcpus)
            except ResourceError as exc:
                self.resources.close()
                raise TargetUnavailable(f"standalone: {exc}") from exc
        for _ in range(self.workers):
            self._add(self._spawn())
        log.info("standalone: %d workers ready on %g vCPU(s)", self.workers, self.vcpus)

    def close(self) -> None:
        """Kill every worker, busy ones included (an in-flight invocation fails at once)."""
        with self._cv:
            self._closed = True
            victims = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cv.notify_all()
        for worker in victims:
            worker.kill()
        if self.resources is not None:
            self.resources.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def scratch_store(self) -> Store:
        """The store the workers use: the configured one, else the same default."""
        from serverless_hpc.store import open_store

        return open_store(self.settings.store_uri)

    @property
    def max_parallel(self) -> int:
        """The pool size: more in flight would only queue."""
        return self.workers

    def describe(self) -> dict[str, Any]:
        """Pool size, the vCPUs it runs on (and the VM's it emulates), machine memory and
        what enforced the vCPUs."""
        out: dict[str, Any] = {
            "workers": self.workers,
            "memory_mb": machine_memory_mb(),
            "vcpus": self.vcpus,
        }
        if self.vm_vcpus is not None:
            out["vm_vcpus"] = self.vm_vcpus
        if self._group is not None:
            out["resources"] = dict(self._group.enforcement)
        return out

    def _take(self, timeout_s: float) -> WorkerProcess | dict[str, Any]:
        """The next free worker, or a failure envelope (closed, empty pool, timed out)."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not self._idle:
                if self._closed:
                    return error_response(PLATFORM_ERROR, "standalone target is closed")
                if not self._all and not self._respawning:
                    return error_response(PLATFORM_ERROR, "standalone pool has no workers left")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return error_response(
                        TIMEOUT, f"no standalone worker free within {timeout_s:g} s"
                    )
                self._cv.wait(remaining)
            return self._idle.pop()

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """Run ``request`` on the next free worker; replace a worker that timed out or died."""
        worker = self._take(timeout_s)
        if isinstance(worker, dict):
            return Outcome(response=worker, cold=False)
        response, reply = call_or_error(worker, request, timeout_s)
        if reply is None:  # the worker was killed (timeout) or died: replace it
            with self._cv:
                lost = worker in self._all
                self._all.discard(worker)
                replace = lost and not self._closed
                if replace:
                    self._respawning += 1
            if replace:
                threading.Thread(target=self._respawn, name="standalone-respawn").start()
            return Outcome(response=response, cold=False, instance=str(worker.pid))
        with self._cv:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
                self._cv.notify()
        cold = bool(reply.get("first_of_workload"))
        preload = float(reply.get("preload_ms") or 0.0)
        breakdown: dict[str, float] = {}
        if cold:
            breakdown = {Phase.IMPORTS: preload, **first_call_phases(response)}
        return Outcome(
            response=response,
            cold=cold,
            init_ms=preload if cold else None,
            duration_ms=float(reply["duration_ms"]) - preload,
            memory_mb=machine_memory_mb(),
            max_rss_mb=float(reply["max_rss_mb"]),
            breakdown=breakdown,
            instance=str(worker.pid),
            resources=dict(self._group.enforcement) if self._group is not None else {},
        )
