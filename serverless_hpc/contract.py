"""The invocation contract shared by every target and every workload.

A request is a JSON object ``{"workload": str, "params": {...}}`` with optional ``run_id``
and ``shard``. A response is either a success envelope::

    {"ok": true, "workload": ..., "result": {...}, "timings": {...},
     "cold_start": bool, "runtime": {"platform": ..., "memory_mb": ..., "cpus": ...}}

or a failure envelope::

    {"ok": false, "error": {"type": "InvalidRequest" | ..., "message": "..."}}

Every platform adapter (local worker, Lambda handler, OpenWhisk action, EC2 runner) only
translates its own envelope to and from these objects, so the workloads never learn where they
run. This module deliberately imports nothing from the rest of the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

#: Error types a response may carry. Callers branch on these, so they are a closed set.
INVALID_REQUEST: Final = "InvalidRequest"
NOT_FOUND: Final = "NotFound"
TIMEOUT: Final = "Timeout"
THROTTLED: Final = "Throttled"
OUT_OF_MEMORY: Final = "OutOfMemory"
DATASET_ERROR: Final = "DatasetError"
EXPORT_MISMATCH: Final = "ExportMismatch"
PLATFORM_ERROR: Final = "PlatformError"
INTERNAL_ERROR: Final = "InternalError"
ERROR_TYPES: Final = frozenset(
    {
        INVALID_REQUEST,
        NOT_FOUND,
        TIMEOUT,
        THROTTLED,
        OUT_OF_MEMORY,
        DATASET_ERROR,
        EXPORT_MISMATCH,
        PLATFORM_ERROR,
        INTERNAL_ERROR,
    }
)

_REQUEST_KEYS: Final = frozenset({"workload", "params", "run_id", "shard"})


class ContractError(Exception):
    """An error that maps onto a failure envelope with a given ``type``.

    Workloads raise subclasses of this for conditions the caller can act on; anything else
    escaping a workload becomes an ``InternalError`` envelope (never a bare traceback).
    """

    error_type: str = INTERNAL_ERROR

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        if error_type is not None:
            if error_type not in ERROR_TYPES:
                raise ValueError(f"unknown error type {error_type!r}")
            self.error_type = error_type

    def to_response(self) -> dict[str, Any]:
        """The failure envelope for this error."""
        return error_response(self.error_type, str(self))


class InvalidRequest(ContractError):
    """The caller sent something malformed; the message names the offending field."""

    error_type = INVALID_REQUEST


class NotFound(ContractError):
    """A named thing (workload, model bundle, object) does not exist."""

    error_type = NOT_FOUND


@dataclass(frozen=True, slots=True)
class Request:
    """A validated invocation request."""

    workload: str
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    shard: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this request, omitting unset optional fields."""
        out: dict[str, Any] = {"workload": self.workload, "params": dict(self.params)}
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.shard is not None:
            out["shard"] = self.shard
        return out


def parse_request(obj: object) -> Request:
    """Validate a decoded JSON request and return it as a :class:`Request`.

    Raises :class:`InvalidRequest` naming the first field that is wrong.
    """
    if not isinstance(obj, dict):
        raise InvalidRequest(f"request must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _REQUEST_KEYS)
    if unknown:
        raise InvalidRequest(f"request has unknown field(s): {', '.join(map(str, unknown))}")
    workload = obj.get("workload")
    if not isinstance(workload, str) or not workload:
        raise InvalidRequest("field 'workload' is required and must be a non-empty string")
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest(f"field 'params' must be an object, got {type(params).__name__}")
    run_id = obj.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        raise InvalidRequest("field 'run_id' must be a string")
    shard = obj.get("shard")
    if shard is not None and (isinstance(shard, bool) or not isinstance(shard, int) or shard < 0):
        raise InvalidRequest("field 'shard' must be a non-negative integer")
    return Request(workload=workload, params=params, run_id=run_id, shard=shard)


def error_response(error_type: str, message: str) -> dict[str, Any]:
    """Build a failure envelope. ``error_type`` must be one of :data:`ERROR_TYPES`."""
    if error_type not in ERROR_TYPES:
        raise ValueError(f"unknown error type {error_type!r}")
    return {"ok": False, "error": {"type": error_type, "message": message}}


def success_response(
    *,
    workload: str,
    result: dict[str, Any],
    timings: dict[str, float],
    cold_start: bool,
    runtime: dict[str, Any],
) -> dict[str, Any]:
    """Build a success envelope; ``timings`` must hold ``load_ms`` and ``compute_ms``."""
    missing = {"load_ms", "compute_ms"} - set(timings)
    if missing:
        raise ValueError(f"timings lack {sorted(missing)}")
    return {
        "ok": True,
        "workload": workload,
        "result": result,
        "timings": timings,
        "cold_start": cold_start,
        "runtime": runtime,
    }


def validate_response(obj: object) -> dict[str, Any]:
    """Check that a decoded response follows the contract; return it unchanged.

    Remote targets call this on whatever came back so a malformed reply is reported as a
    ``PlatformError`` rather than misread as a result.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise ValueError("response is not a contract envelope (no boolean 'ok')")
    if obj["ok"]:
        for key in ("workload", "result", "timings", "cold_start", "runtime"):
            if key not in obj:
                raise ValueError(f"success response lacks {key!r}")
    else:
        err = obj.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("type"), str):
            raise ValueError("failure response lacks error.type")
        if not isinstance(err.get("message"), str):
            raise ValueError("failure response lacks error.message")
    return obj
