"""What every workload shares: its parameter model, its run context and its output."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from serverless_hpc.contract import InvalidRequest


class Params(BaseModel):
    """Base of every workload's parameters: unknown fields and type coercion are errors.

    Strict mode means ``"5"`` is not accepted where an integer is expected: a benchmark whose
    parameters were silently coerced would not measure what its caller asked for.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True, slots=True)
class Context:
    """Where a workload finds its inputs and puts its outputs on this platform.

    Adapters build it from the environment (``$FASHION_MNIST_DIR``, ``$SHPC_STORE``), so the
    request itself never carries platform paths.

    ``deadline`` is when the platform will stop this invocation, in Unix seconds
    (``time.time()`` clock), or None where nothing stops it (standalone, EC2). Each adapter
    converts its platform's own clock with the helpers below; a workload that can stop early
    and resume (``train``) compares it with :meth:`remaining_s`.
    """

    data_dir: Path | None = None
    store_uri: str | None = None
    deadline: float | None = None

    def remaining_s(self, now: Callable[[], float] = time.time) -> float | None:
        """Seconds left before the platform's deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - now()

    @classmethod
    def from_env(cls) -> Context:
        """The context the environment describes (unset values fall back to defaults)."""
        data = os.environ.get("FASHION_MNIST_DIR")
        return cls(data_dir=Path(data) if data else None, store_uri=os.environ.get("SHPC_STORE"))


def deadline_from_remaining_ms(remaining_ms: float, now: float) -> float:
    """Lambda: ``context.get_remaining_time_in_millis()`` read at Unix time ``now``."""
    return now + remaining_ms / 1e3


def deadline_from_epoch_ms(epoch_ms: str | int | float | None) -> float | None:
    """OpenWhisk: ``$__OW_DEADLINE``, the activation's deadline in Unix milliseconds.

    None when it is unset or not a number (an action run outside OpenWhisk).
    """
    if epoch_ms is None or epoch_ms == "":
        return None
    try:
        value = float(epoch_ms)
    except ValueError:
        return None
    return value / 1e3 if value > 0 else None


def deadline_from_timeout(timeout_s: float, now: float) -> float:
    """local-faas: the invocation timeout the emulator enforces, from the send time ``now``."""
    return now + timeout_s


@dataclass(slots=True)
class Output:
    """A workload's result payload and the timings it measured itself."""

    result: dict[str, Any]
    load_ms: float
    compute_ms: float
    extra_timings: dict[str, float] = field(default_factory=dict)


def parse_params(model: type[P], raw: dict[str, Any]) -> P:
    """Validate ``raw`` into ``model``, turning pydantic's error into one naming the field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "params"
            problems.append(f"params.{loc}: {err['msg']}")
        raise InvalidRequest("; ".join(problems)) from None
