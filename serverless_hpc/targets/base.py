"""The one Target interface every platform implements, and what an invocation yields.

A target turns a contract request into an :class:`Outcome`: the contract response plus the
platform's own accounting (cold start, init, duration, billed time, memory). The benchmark
driver measures ``client_ms`` around :meth:`Target.invoke` itself, so that figure means the
same thing on every target.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from serverless_hpc.invocation import Outcome

if TYPE_CHECKING:
    from serverless_hpc.netloop import Attempts
    from serverless_hpc.store import Store

log = logging.getLogger(__name__)

#: Upper bounds every target can honour; a target with a lower platform limit (Lambda's
#: 900 s timeout) checks its own. A local wait longer than a day is a typo, and far beyond
#: it the OS's timers overflow (select() takes int milliseconds: about 24.8 days).
MAX_TIMEOUT_S: Final = 86_400.0
MAX_KEEP_ALIVE_S: Final = 86_400.0
#: Lambda's memory ceiling; local-faas emulates Lambda's settings.
MAX_MEMORY_MB: Final = 10_240
#: Lambda's default regional concurrency; more local processes than that is never meant.
MAX_CONCURRENCY: Final = 1000


class TargetUnavailable(Exception):
    """The target cannot run here: missing extra, credentials, endpoint or deployment."""


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """Settings the driver passes to every target; each uses the ones that apply to it.

    ``extra`` carries target-specific options (``--target-opt key=value`` on the CLI), which
    each target validates itself.
    """

    data_dir: Path | None = None
    store_uri: str | None = None
    log_dir: Path | None = None
    memory_mb: int | None = None
    concurrency: int | None = None
    keep_alive_s: float = 60.0
    timeout_s: float | None = None
    init_timeout_s: float = 180.0
    extra: dict[str, str] = field(default_factory=dict)
    #: The run's lock file (see :mod:`serverless_hpc.rundir`): local instances publish a
    #: model only while it is held.
    run_lock: Path | None = None

    def __post_init__(self) -> None:
        # Reject values that would otherwise read as "use the default" (``0 or default``),
        # make no sense, or exceed what a platform or the OS can honour, naming the CLI
        # option and the bound. Comparisons are written so NaN fails them too.
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise TargetUnavailable(
                f"--concurrency must be >= 1 and at most {MAX_CONCURRENCY}, got {self.concurrency}"
            )
        if self.timeout_s is not None and not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise TargetUnavailable(
                f"--timeout must be > 0 seconds and at most {MAX_TIMEOUT_S:g}, got {self.timeout_s}"
            )
        if not 0 <= self.keep_alive_s <= MAX_KEEP_ALIVE_S:
            raise TargetUnavailable(
                f"--keep-alive must be >= 0 seconds and at most {MAX_KEEP_ALIVE_S:g}, "
                f"got {self.keep_alive_s}"
            )
        if self.memory_mb is not None and not 128 <= self.memory_mb <= MAX_MEMORY_MB:
            raise TargetUnavailable(
                f"--memory-mb: memory_mb must be >= 128 and at most {MAX_MEMORY_MB} "
                f"(Lambda's range), got {self.memory_mb}"
            )
        if not (0 < self.init_timeout_s <= MAX_TIMEOUT_S and math.isfinite(self.init_timeout_s)):
            raise TargetUnavailable(
                f"init_timeout_s must be > 0 seconds and at most {MAX_TIMEOUT_S:g}, "
                f"got {self.init_timeout_s}"
            )

    def worker_env(self) -> dict[str, str]:
        """Environment a local worker needs to find data and the model store."""
        env: dict[str, str] = {}
        if self.data_dir is not None:
            env["FASHION_MNIST_DIR"] = str(self.data_dir)
        if self.store_uri is not None:
            env["SHPC_STORE"] = self.store_uri
        if self.memory_mb is not None:
            env["SHPC_MEMORY_MB"] = str(self.memory_mb)
        if self.run_lock is not None:
            env["SHPC_RUN_LOCK"] = str(self.run_lock)
        return env


@dataclass(slots=True)
class TimedOutcome:
    """An outcome with the driver-side timing a batch-native target measured for it."""

    outcome: Outcome
    client_ms: float
    t_send: float  # unix time
    t_recv: float

    @classmethod
    def of(cls, outcome: Outcome, attempts: Attempts) -> TimedOutcome:
        """``outcome`` of a fan-out's request, with its throttles, retries and times."""
        outcome.throttled, outcome.retries = attempts.throttled, attempts.retries
        return cls(outcome, *attempts.times())


class Target(ABC):
    """A place where workloads run. Use as a context manager: ``open`` then ``close``."""

    #: Registry name, e.g. ``"local-faas"``.
    name: ClassVar[str]
    #: Whether ``cold`` mode (every invocation a cold start) is supported.
    supports_forced_cold: ClassVar[bool] = False

    def __init__(self, settings: TargetSettings) -> None:
        self.settings = settings

    def open(self) -> None:  # noqa: B027 - optional hook, most targets need no setup
        """Check that the target is usable and prepare it; raise :class:`TargetUnavailable`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything the target started."""

    @abstractmethod
    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """Run one contract request; never raise for a failed invocation (see :class:`Outcome`)."""

    #: ``--target-opt`` keys this target understands (see :meth:`target_options`).
    options: ClassVar[frozenset[str]] = frozenset()

    def target_options(self) -> dict[str, str]:
        """This target's ``--target-opt`` values.

        ``key=value`` goes to every target of the run that knows ``key`` (the driver checks
        that at least one does: :func:`serverless_hpc.targets.check_options`), so a run over
        ``lambda,ec2`` can share ``region=...``; ``<target>.key=value`` goes to that target
        only and wins over the plain form. A prefixed key this target does not know is an
        error naming the keys it does know.
        """
        prefix = f"{self.name}."
        shared = {k: v for k, v in self.settings.extra.items() if k in self.options}
        scoped = {
            k.removeprefix(prefix): v
            for k, v in self.settings.extra.items()
            if k.startswith(prefix)
        }
        unknown = sorted(set(scoped) - self.options)
        if unknown:
            raise TargetUnavailable(
                f"{self.name}: unknown --target-opt {', '.join(prefix + k for k in unknown)} "
                f"(known: {', '.join(sorted(self.options)) or 'none'})"
            )
        return {**shared, **scoped}

    def prepare_batch(self, workload: str, *, force_cold: bool, timeout_s: float) -> None:  # noqa: B027 - optional hook
        """Called by the driver before it sends a batch, outside every invocation's timing.

        A target that must do platform work to honour ``force_cold`` (Lambda retires warm
        environments with a configuration update) does it here, so ``client_ms`` measures
        invocations only. A failure here is logged by the driver and the invocations then
        report it themselves.
        """

    #: Whether the target can run a function at a memory size the plan chooses
    #: (``--memory-mb 512,1024``); the others run the plan once and say they ignore it.
    supports_memory: ClassVar[bool] = False

    def set_memory(self, workload: str, memory_mb: int) -> None:
        """Run ``workload``'s function at ``memory_mb`` from the next batch on.

        Called by the driver before every batch of a memory sweep, outside the timing; a
        target only does platform work when the size changes. Only called when
        :attr:`supports_memory`; raising fails that batch's invocations.
        """
        raise NotImplementedError(f"{self.name} cannot set memory")

    def check_memory(self, sizes: Sequence[int]) -> None:  # noqa: B027 - optional hook
        """Refuse (:class:`TargetUnavailable`) sizes this target cannot set.

        Called by the driver after :meth:`open` and before anything runs, so a sweep the
        platform's limits rule out costs nothing.
        """

    #: True when the target runs a whole fan-out itself (:meth:`invoke_batch`), as the EC2
    #: target does with one SSM command; the driver then does not fan out per request.
    #: ``vm`` for a target that is one machine (its workloads plan their coupled-node form,
    #: the spec's ``vm_params``), ``faas`` for a function platform.
    kind: ClassVar[str] = "faas"
    batch_native: ClassVar[bool] = False

    def invoke_batch(
        self, requests: Sequence[dict[str, Any]], *, timeout_s: float, force_cold: bool = False
    ) -> list[TimedOutcome]:
        """Run a whole fan-out at once (only for ``batch_native`` targets).

        Returns one :class:`TimedOutcome` per request, in order. ``client_ms`` is what the
        driver's side saw for that request (for a batch-native target, the batch's wall time).
        """
        raise NotImplementedError(f"{self.name} is not batch-native")

    def scratch_store(self) -> Store | None:
        """The model store this target's functions write, opened by the driver; None where
        the driver cannot reach it. The driver deletes a finished chain's checkpoints there."""
        return None

    @property
    def max_parallel(self) -> int:
        """How many invocations the driver should have in flight at once."""
        return 64

    def describe(self) -> dict[str, Any]:
        """Settings worth recording with every result (memory, concurrency, region...)."""
        return {"memory_mb": self.settings.memory_mb}

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
