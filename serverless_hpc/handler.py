"""The one function handler every platform adapter calls.

``handle(event)`` takes a decoded contract request and returns a contract response, for any
workload, on any platform: the local worker, the Lambda handler, the OpenWhisk action and the
EC2 runner are each a few lines around it (as Lithops' backends share one function handler).
It never raises: a malformed request, an unknown workload or a workload failure all come back
as the contract's failure envelope, with the traceback logged rather than returned.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
import time
from typing import Any

from serverless_hpc import workloads
from serverless_hpc.contract import (
    DATASET_ERROR,
    INTERNAL_ERROR,
    ContractError,
    error_response,
    parse_request,
    success_response,
)
from serverless_hpc.data.fashion_mnist import DatasetError
from serverless_hpc.host import available_cpus
from serverless_hpc.workloads.base import Context

log = logging.getLogger(__name__)

#: Whether this process has started running a workload yet. The first request that names a
#: known workload is the cold start (it pays the imports and loads); a malformed request before
#: it does not use that up, so the invocation that really pays the load is the one marked cold.
_cold_start = threading.Semaphore(1)  # acquired exactly once: an atomic test-and-set


def _take_cold_start() -> bool:
    return _cold_start.acquire(blocking=False)


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (``VmHWM``) to its current RSS; False if unsupported.

    Called at the start of every invocation, so ``max_rss_mb`` is the peak *during* that
    invocation (its resident baseline included), not the peak of whatever the process ran
    before: a standalone worker that trained a model must not report 2.5 GB for a classify.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def max_rss_mb() -> float:
    """Peak resident memory of this process image so far, in MB.

    Reads ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s ``ru_maxrss`` survives
    ``exec``, so a freshly started worker would report its parent's peak (seen here: a
    classify instance "using" the 1.4 GB of the test runner that spawned it). Falls back to
    ``ru_maxrss`` where ``/proc`` does not exist.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def runtime_info(platform: str, memory_mb: int | None) -> dict[str, Any]:
    """Describe where this invocation ran, for the ``runtime`` field of a response."""
    if memory_mb is None:
        env = os.environ.get("SHPC_MEMORY_MB")
        memory_mb = int(env) if env and env.isdigit() else None
    return {
        "platform": platform,
        "memory_mb": memory_mb,
        "cpus": available_cpus(),
        "python": sys.version.split()[0],
        "pid": os.getpid(),
    }


def handle(
    event: object,
    *,
    platform: str,
    memory_mb: int | None = None,
    ctx: Context | None = None,
) -> dict[str, Any]:
    """Run one contract request and return its contract response. Never raises."""
    started = time.perf_counter()
    reset_peak_rss()
    try:
        request = parse_request(event)
        module = workloads.get(request.workload)
        cold = _take_cold_start()
        out = module.run(request.params, ctx or Context.from_env())
    except DatasetError as exc:
        return error_response(DATASET_ERROR, str(exc))
    except ContractError as exc:
        return exc.to_response()
    except Exception as exc:  # the contract promises an envelope, never a traceback
        log.exception("workload failed")
        return error_response(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    timings = {
        "load_ms": out.load_ms,
        "compute_ms": out.compute_ms,
        **out.extra_timings,
        "handler_ms": (time.perf_counter() - started) * 1e3,
    }
    runtime = runtime_info(platform, memory_mb)
    runtime["max_rss_mb"] = max_rss_mb()
    return success_response(
        workload=request.workload,
        result=out.result,
        timings=timings,
        cold_start=cold,
        runtime=runtime,
    )


def preload(workload: str) -> float:
    """Import what ``workload`` needs (its heavy libraries); return the time it took in ms.

    Adapters call this during their init phase, so import cost is reported as cold-start
    initialisation, the way a Lambda function's module-level imports are.
    """
    t0 = time.perf_counter()
    workloads.get(workload).preload()
    return (time.perf_counter() - t0) * 1e3
