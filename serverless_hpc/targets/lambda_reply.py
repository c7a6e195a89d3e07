"""What a Lambda ``Invoke`` answers, read: REPORT line, function errors, the outcome.

The platform's REPORT line (Init Duration, Duration, Billed Duration, Memory Size, Max
Memory Used) comes back base64-encoded in the ``X-Amz-Log-Result`` header of a synchronous
invocation with ``LogType=Tail``; a ``FunctionError`` payload is mapped onto the contract's
failure envelope. Pure functions, no AWS client.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from serverless_hpc.contract import (
    OUT_OF_MEMORY,
    PLATFORM_ERROR,
    TIMEOUT,
    error_response,
    validate_response,
)
from serverless_hpc.invocation import Outcome, Phase, first_call_phases
from serverless_hpc.pricing import CostLedger, Prices, lambda_invocation_cost, s3_requests_cost
from serverless_hpc.targets.lambda_dispatch import Reply

log = logging.getLogger(__name__)


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


def reply_outcome(
    fn: str, resp: Reply, *, architecture: str | None, prices: Prices, ledger: CostLedger
) -> Outcome:
    """Turn an ``Invoke`` reply into an outcome: payload, REPORT, cost (added to ``ledger``
    too), breakdown."""
    report = parse_report(decode_tail(resp.headers.get("x-amz-log-result")))
    raw = resp.body
    try:
        payload: Any = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = raw.decode("utf-8", errors="replace")
    if resp.headers.get("x-amz-function-error"):
        response = function_error(payload, report)
    else:
        try:
            response = validate_response(payload)
        except ValueError as exc:
            response = error_response(PLATFORM_ERROR, f"{fn}: malformed response: {exc}")
    if report is not None:
        cold = report.init_ms is not None
    else:
        log.warning("%s: no REPORT line in the log tail; timings from the payload", fn)
        cold = bool(response.get("cold_start", False))
    runtime = response.get("runtime", {}) if response.get("ok") else {}
    cost = _cost(report, runtime.get("s3_requests"), architecture, prices, ledger)
    return Outcome(
        response=response,
        cold=cold,
        init_ms=report.init_ms if report else None,
        duration_ms=report.duration_ms if report else None,
        billed_ms=report.billed_ms if report else None,
        memory_mb=report.memory_mb if report else runtime.get("memory_mb"),
        max_rss_mb=report.max_memory_mb if report else runtime.get("max_rss_mb"),
        cost_usd=cost,
        breakdown=_breakdown(report, response) if cold else {},
        instance=instance_of(runtime),
    )


def _breakdown(report: Report | None, response: dict[str, Any]) -> dict[str, float]:
    """A cold start split into the platform's INIT and the handler's own phases."""
    timings = response.get("timings", {}) if response.get("ok") else {}
    out: dict[str, float] = {}
    if report is not None and report.init_ms is not None and "preload_ms" in timings:
        out[Phase.IMPORTS] = float(timings["preload_ms"])
        # the rest of INIT: runtime start-up and the core imports
        out[Phase.PROCESS_START] = max(report.init_ms - float(timings["preload_ms"]), 0.0)
    if "stage_ms" in timings:
        out[Phase.DATASET_STAGE] = float(timings["stage_ms"])
    return {**out, **first_call_phases(response)}


def _cost(
    report: Report | None,
    s3: Any,
    architecture: str | None,
    prices: Prices,
    ledger: CostLedger,
) -> float | None:
    """This invocation's cost (``None`` without a REPORT line to bill from)."""
    if report is None or report.billed_ms is None or report.memory_mb is None:
        return None
    arch = architecture or "x86_64"
    compute = lambda_invocation_cost(
        billed_ms=report.billed_ms,
        memory_mb=report.memory_mb,
        architecture=arch,
        prices=prices,
    )
    request = prices.lambda_.request
    gb_s = report.billed_ms / 1000.0 * report.memory_mb / 1024.0
    ledger.add(f"lambda GB-s ({arch})", gb_s, "GB-s", compute - request)
    ledger.add("lambda requests", 1, "request", request)
    total = compute
    if isinstance(s3, dict):
        gets, puts = int(s3.get("get", 0)), int(s3.get("put", 0))
        ledger.add("s3 GET-class requests", gets, "request", gets * prices.s3.get_request)
        ledger.add("s3 PUT-class requests", puts, "request", puts * prices.s3.put_request)
        total += s3_requests_cost(gets=gets, puts=puts, prices=prices)
    return total
