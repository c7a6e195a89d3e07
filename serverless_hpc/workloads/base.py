"""What every workload shares: its parameter model, its run context and its output."""

from __future__ import annotations

import os
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
    """

    data_dir: Path | None = None
    store_uri: str | None = None

    @classmethod
    def from_env(cls) -> Context:
        """The context the environment describes (unset values fall back to defaults)."""
        data = os.environ.get("FASHION_MNIST_DIR")
        return cls(data_dir=Path(data) if data else None, store_uri=os.environ.get("SHPC_STORE"))


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
