"""One invocation as a target saw it: the :class:`Outcome` every target returns.

A target turns a contract request into an :class:`Outcome`: the contract response plus the
platform's own accounting (cold start, init, duration, billed time, memory, cost, the cold-start
phases). The driver wraps it with where and when it ran into a record
(:class:`serverless_hpc.rundir.InvocationRecord`, one JSON line per invocation). The EC2
runner's wire format is :meth:`Outcome.to_dict`, read back with :meth:`Outcome.from_dict`.

Cold-start phases are the closed enumeration :class:`Phase`: every target reports the phases it
can measure under these names and no others, so the report can stack them alike. Figures a
platform has that are not phases (an activation's total time, the wait for a configuration
update) go to ``extra``, which no two platforms are expected to share.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class Phase(enum.StrEnum):
    """The phases of a cold start, in the order they happen (values are record keys, ms).

    A target reports the ones it can measure; none is estimated.
    """

    #: Waiting for an instance: a platform's queue (OpenWhisk ``waitTime``).
    QUEUE = "queue_ms"
    #: The platform's initialisation as it reports it, before the handler's own imports
    #: (Lambda: INIT minus the handler's imports; local: process spawn to the worker's main).
    PROCESS_START = "process_start_ms"
    #: Importing the workload's libraries (TensorFlow, LiteRT, numpy).
    IMPORTS = "import_ms"
    #: Copying the dataset into the instance (Lambda's /tmp, the EC2 runner's disk).
    DATASET_STAGE = "dataset_stage_ms"
    #: Loading the model and data in the first invocation.
    LOAD = "load_ms"
    #: The first invocation's own work (first inference; for ``train`` the whole training).
    FIRST_CALL = "first_call_ms"

    @classmethod
    def label(cls, phase: Phase) -> str:
        """A human name for plots and tables."""
        return _LABELS[phase]


_LABELS = {
    Phase.QUEUE: "queue",
    Phase.PROCESS_START: "process start",
    Phase.IMPORTS: "imports",
    Phase.DATASET_STAGE: "dataset staging",
    Phase.LOAD: "model + data load",
    Phase.FIRST_CALL: "first call",
}
_PHASES = frozenset(p.value for p in Phase)


def first_call_phases(response: Mapping[str, Any]) -> dict[str, float]:
    """The LOAD and FIRST_CALL phases a cold invocation's own timings give (empty on failure)."""
    if not response.get("ok"):
        return {}
    timings = response.get("timings") or {}
    out: dict[str, float] = {}
    for src, phase in (("load_ms", Phase.LOAD), ("compute_ms", Phase.FIRST_CALL)):
        value = timings.get(src)
        if isinstance(value, int | float):
            out[phase.value] = float(value)
    return out


@dataclass(slots=True)
class Outcome:
    """One invocation as a target saw it.

    ``response`` is always a contract envelope: a platform failure (timeout, crash, throttling
    past the deadline) is a failure envelope, not an exception, so the driver can record it and
    carry on. ``breakdown`` holds cold-start phases only (keys from :class:`Phase`).
    """

    response: dict[str, Any]
    cold: bool
    init_ms: float | None = None
    duration_ms: float | None = None
    billed_ms: float | None = None
    memory_mb: int | None = None
    max_rss_mb: float | None = None
    cost_usd: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)
    instance: str | None = None
    extra: dict[str, float] = field(default_factory=dict)
    #: Which enforcement of the instance's resources applied (local-faas: profile, ``cpus``,
    #: ``cpu``/``memory`` mechanism such as ``cgroup-v1-quota`` or ``post-invocation-check``);
    #: empty where the platform itself enforces them.
    resources: dict[str, Any] = field(default_factory=dict)
    #: True when the CPU granted to the invocations in flight with this one exceeded the
    #: machine's CPUs (its figures then measure the machine); None where not assessed.
    oversubscribed: bool | None = None
    #: Answers that said "throttled" (HTTP 429 and the like) before the final one.
    throttled: int = 0
    #: Times the request was re-sent (after a throttle, or a connection that never opened).
    retries: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.breakdown) - _PHASES)
        if unknown:
            raise ValueError(f"not cold-start phases: {unknown} (known: {sorted(_PHASES)})")

    @property
    def ok(self) -> bool:
        """Whether the response is a success envelope."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """``"Type: message"`` of a failure envelope, else None."""
        if self.ok:
            return None
        err = self.response.get("error") or {}
        return f"{err.get('type')}: {err.get('message')}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the EC2 runner's wire format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """The inverse of :meth:`to_dict`; ``ValueError`` naming what is malformed."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an outcome is an object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown outcome field(s) {unknown}")
        if not isinstance(data.get("response"), dict) or "cold" not in data:
            raise ValueError("an outcome needs 'response' (an object) and 'cold'")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValueError(str(exc)) from None
