"""What a Lambda ``Invoke`` answers, read: the log tail's REPORT line and function errors.

The platform's REPORT line (Init Duration, Duration, Billed Duration, Memory Size, Max
Memory Used) comes back base64-encoded in the ``X-Amz-Log-Result`` header of a synchronous
invocation with ``LogType=Tail``; a ``FunctionError`` payload is mapped onto the contract's
failure envelope. Pure functions, no AWS client.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from serverless_hpc.contract import OUT_OF_MEMORY, PLATFORM_ERROR, TIMEOUT, error_response


@dataclass(frozen=True, slots=True)
class Report:
    """The platform's REPORT line for one invocation."""

    duration_ms: float | None = None
    billed_ms: float | None = None
    memory_mb: int | None = None
    max_memory_mb: float | None = None
    init_ms: float | None = None


def decode_tail(log_result: str | None) -> str:
    """The invocation's log tail (``LogResult`` is base64 of the last 4 KB)."""
    if not log_result:
        return ""
    try:
        return base64.b64decode(log_result).decode("utf-8", errors="replace")
    except ValueError:  # binascii.Error: not base64, so no REPORT line to read
        return ""


def parse_report(log_text: str) -> Report | None:
    """The REPORT line's figures; ``None`` when the tail holds no REPORT line.

    The line is tab-separated ``Key: value unit`` fields after ``REPORT RequestId: ...``.
    """
    line = next((ln for ln in reversed(log_text.splitlines()) if ln.startswith("REPORT ")), None)
    if line is None:
        return None
    fields: dict[str, str] = {}
    for part in line.split("\t"):
        key, sep, value = part.strip().partition(": ")
        if sep:
            fields[key] = value.split()[0] if value.split() else ""

    def num(key: str) -> float | None:
        try:
            return float(fields[key]) if key in fields else None
        except ValueError:
            return None

    mem = num("Memory Size")
    return Report(
        duration_ms=num("Duration"),
        billed_ms=num("Billed Duration"),
        memory_mb=int(mem) if mem is not None else None,
        max_memory_mb=num("Max Memory Used"),
        init_ms=num("Init Duration"),
    )


def function_error(payload: Any, report: Report | None) -> dict[str, Any]:
    """Map a ``FunctionError`` payload onto the contract's failure envelope."""
    etype = str(payload.get("errorType", "")) if isinstance(payload, dict) else ""
    emsg = str(payload.get("errorMessage", payload)) if isinstance(payload, dict) else str(payload)
    text = f"{etype}: {emsg}" if etype else emsg
    if "Task timed out" in emsg or etype == "Sandbox.Timedout":
        return error_response(TIMEOUT, f"function timed out: {text}")
    oom = (
        report is not None
        and report.memory_mb is not None
        and report.max_memory_mb is not None
        and report.max_memory_mb >= report.memory_mb
    )
    if oom or etype == "Runtime.OutOfMemory":
        return error_response(OUT_OF_MEMORY, f"function ran out of memory: {text}")
    return error_response(PLATFORM_ERROR, f"function error: {text}")


def instance_of(runtime: dict[str, Any]) -> str | None:
    """The execution environment: its log stream (unique), else the pid the handler saw."""
    if isinstance(runtime.get("instance"), str):
        return str(runtime["instance"])
    return str(runtime["pid"]) if "pid" in runtime else None
