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
* **Resources** (:mod:`serverless_hpc.targets.resources`): each instance runs in its own
  control group, joined before any of its code runs: a CPU quota in proportion to its
  memory as the platform profile says (``--target-opt local-faas.profile=lambda``, the
  default: 1,769 MB = one vCPU; ``openwhisk``: OpenWhisk's default CPU share; ``none``: no
  control) and a kernel memory limit. A kernel OOM kill during an invocation is recorded as
  ``OutOfMemory`` and the instance replaced. Where no group can be made, CPU affinity and
  the check below apply instead; every record names what applied (``resources``).
* **Memory check**: an instance whose peak RSS during an invocation exceeds ``memory_mb`` is
  also retired and the invocation recorded as ``OutOfMemory`` (the only memory enforcement
  of the fallback and the ``none`` profile). ``max_rss_mb`` is the peak during the
  invocation (resident baseline included); Lambda's "Max Memory Used" is the environment's
  lifetime peak, which is never lower.
* **Capacity**: when the CPU granted to the invocations in flight exceeds the machine's
  CPUs, their records say ``oversubscribed`` (a warning is logged once);
  ``--target-opt local-faas.capacity=hold`` instead holds invocations back until their CPU
  fits (the wait is in ``client_ms`` and the batch's makespan).
* **Billing**: ``billed_ms`` is duration (plus init on a cold start) rounded up to 1 ms, as
  Lambda bills since it started billing the init phase.
* **Forced cold**: ``force_cold=True`` starts a fresh instance and retires it afterwards, for
  cold-start measurements.
"""

from __future__ import annotations

import logging
import math
import time
from typing import IO, TYPE_CHECKING, Any

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
from serverless_hpc.targets import resources
from serverless_hpc.targets.base import Target, TargetSettings, TargetUnavailable
from serverless_hpc.targets.capacity import CpuCapacity
from serverless_hpc.targets.cgroups import ResourceError
from serverless_hpc.targets.instances import Closed, InstancePool, Throttled
from serverless_hpc.targets.process import (
    ReadyInfo,
    WorkerDied,
    WorkerProcess,
    WorkerTimeout,
    call_or_error,
    open_log,
)
from serverless_hpc.workloads.base import deadline_from_timeout

if TYPE_CHECKING:
    from serverless_hpc.store import Store

log = logging.getLogger(__name__)


#: ``--target-opt local-faas.capacity``: record oversubscription, or hold invocations back.
CAPACITY_MODES = ("record", "hold")


class LocalFaasTarget(Target):
    """Function instances as processes with cold/warm accounting; see the module docstring.

    The instances are an :class:`~serverless_hpc.targets.instances.InstancePool`; the CPU in
    flight is a :class:`~serverless_hpc.targets.capacity.CpuCapacity`.
    """

    name = "local-faas"
    supports_forced_cold = True
    supports_memory = True
    options = frozenset({"profile", "capacity"})

    def __init__(
        self, settings: TargetSettings, *, manager: resources.ResourceManager | None = None
    ) -> None:
        """``manager`` is a test seam (a fake cgroup tree); by default one is made here."""
        super().__init__(settings)
        opts = self.target_options()
        try:
            prof = resources.profile(opts.get("profile", resources.DEFAULT_PROFILE))
        except ValueError as exc:
            raise TargetUnavailable(f"local-faas: --target-opt profile: {exc}") from None
        self.capacity_mode = opts.get("capacity", "record")
        if self.capacity_mode not in CAPACITY_MODES:
            raise TargetUnavailable(
                f"local-faas: --target-opt capacity must be one of {CAPACITY_MODES}, "
                f"got {self.capacity_mode!r}"
            )
        self.resources = manager or resources.ResourceManager(prof)
        self.machine_cpus = self.resources.machine_cpus
        self._memory: int | None = None  # set by the plan's memory dimension
        cap = settings.concurrency
        self.concurrency = cap if cap is not None else max(2, available_cpus())
        self.keep_alive_s = settings.keep_alive_s
        self.pool = InstancePool(
            platform=self.name,
            resources=self.resources,
            settings=settings,
            concurrency=self.concurrency,
            keep_alive_s=self.keep_alive_s,
        )
        self.capacity = CpuCapacity(
            self.machine_cpus,
            hold=self.capacity_mode == "hold",
            announce=self.resources.profile.mode != "none",
        )
        self._log: IO[bytes] | None = None

    def open(self) -> None:
        """Set up resource control (sweeping dead drivers' groups); instances start on demand."""
        self.resources.open()
        self._log = open_log(self.settings.log_dir, self.name)

    def close(self) -> None:
        """Kill every instance, busy ones included; later invocations are refused.

        An invocation in flight then fails at once (its instance is gone) instead of keeping
        a process alive after the run.
        """
        self.capacity.close()
        self.pool.close()
        self.resources.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def set_memory(self, workload: str, memory_mb: int) -> None:
        """Start new instances at ``memory_mb`` from now on (the plan's memory dimension).

        Idle instances of another size are not reused (a different size is another
        function configuration, as on Lambda) and retire when their slot is needed.
        """
        self._memory = memory_mb

    def scratch_store(self) -> Store:
        """The store the workers use: the configured one, else the same default."""
        from serverless_hpc.store import open_store

        return open_store(self.settings.store_uri)

    @property
    def max_parallel(self) -> int:
        """The concurrency cap."""
        return self.concurrency

    def memory_for(self, workload: str) -> int:
        """The function's memory setting."""
        if self._memory is not None:
            return self._memory
        if self.settings.memory_mb is not None:
            return self.settings.memory_mb
        return workloads.spec(workload).memory_mb  # the function's own size, as deployed

    def describe(self) -> dict[str, Any]:
        """Concurrency cap, keep-alive and memory setting."""
        return {
            "concurrency": self.concurrency,
            "keep_alive_s": self.keep_alive_s,
            "memory_mb": self.settings.memory_mb,
            "profile": self.resources.profile.name,
            "profile_source": self.resources.profile.source,
            "enforcement": self.resources.backend.name
            if self.resources.backend is not None
            else f"fallback ({self.resources.fallback_reason})",
            "machine_cpus": self.machine_cpus,
            "capacity": self.capacity_mode,
        }

    def idle_count(self) -> int:
        """Idle instances right now, after retiring the expired ones."""
        return self.pool.idle_count()

    @property
    def cold_starts(self) -> int:
        """Instances started so far."""
        return self.pool.cold_starts

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
        token: int | None = None
        try:
            token = self.capacity.enter(self._cpus_of(memory_mb), deadline)
            while True:
                worker, reserved, victims = self.pool.acquire(
                    workload, memory_mb, deadline, force_cold
                )
                self.pool.retire(victims)
                if worker is not None:
                    break
                if reserved:
                    worker, ready = self.pool.start(workload, memory_mb, stderr=self._log)
                    break
        except Throttled:
            self.capacity.leave(token)
            held = " and the machine's CPU capacity (capacity=hold)" if token is None else ""
            msg = (
                f"no local-faas instance free within the {timeout_s:g} s timeout "
                f"(concurrency cap {self.concurrency}{held})"
            )
            return Outcome(response=error_response(THROTTLED, msg), cold=False)
        except Closed:
            self.capacity.leave(token)
            msg = "local-faas target is closed"
            return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=False)
        except (WorkerDied, WorkerTimeout, OSError, ResourceError) as exc:
            self.capacity.leave(token)
            msg = f"function instance failed to initialise: {exc}"
            return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=True)
        try:
            outcome = self._run_on(worker, ready, request, timeout_s, memory_mb, force_cold)
        finally:
            oversubscribed = self.capacity.leave(token)
        if self.resources.profile.mode != "none":
            outcome.oversubscribed = oversubscribed
        return outcome

    def _cpus_of(self, memory_mb: int) -> float:
        """CPU an invocation at ``memory_mb`` is granted (all of the machine without control)."""
        cpus = self.resources.limits(memory_mb).cpus
        return float(self.machine_cpus) if cpus is None else cpus

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
        group = self.pool.group_of(worker)
        enforcement = dict(group.enforcement) if group is not None else {}
        extra = {"cgroup_setup_ms": group.setup_ms} if group and ready and group.rel else {}
        try:
            t_call = time.perf_counter()
            # the workload sees the timeout enforced here, so a training can stop in time
            deadline = deadline_from_timeout(timeout_s, time.time())
            response, reply = call_or_error(worker, request, timeout_s, deadline=deadline)
            call_ms = (time.perf_counter() - t_call) * 1e3
            cold = ready is not None
            init_ms = ready.init_ms if ready is not None else None
            if reply is None and group is not None and group.oom_killed():
                # The kernel killed the instance at its memory limit, during the invocation.
                response = error_response(
                    OUT_OF_MEMORY,
                    f"the instance was killed at its {memory_mb} MB memory limit "
                    f"({enforcement.get('memory')})",
                )
                return Outcome(
                    response=response,
                    cold=cold,
                    init_ms=init_ms,
                    duration_ms=call_ms,  # up to the kill, as the parent saw it
                    memory_mb=memory_mb,
                    instance=str(worker.pid),
                    resources=enforcement,
                    extra=extra,
                )
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
                    resources=enforcement,
                    extra=extra,
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
                resources=enforcement,
                extra=extra,
            )
        finally:
            self.pool.release(worker, keep=keep)
