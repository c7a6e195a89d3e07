"""``sleep``: the platform-overhead microbenchmark (SeBS's ``010.sleep`` in spirit).

It does no useful work: it sleeps for ``seconds`` and optionally holds ``alloc_mb`` of
touched memory meanwhile. Latency minus ``seconds`` is the platform's own overhead, and the
memory option exercises a platform's memory limit. Not part of the default benchmark.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from serverless_hpc.workloads.base import Context, Output, Params, parse_params

_PAGE = 4096


class SleepParams(Params):
    """How long to sleep and how much memory to hold."""

    seconds: float = Field(default=0.0, ge=0.0, le=900.0)
    alloc_mb: int = Field(default=0, ge=0, le=10240)


def preload() -> None:
    """Nothing to import."""


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Sleep, holding the requested memory (every page written, so it is resident)."""
    p = parse_params(SleepParams, raw)
    t0 = time.perf_counter()
    block = bytearray(p.alloc_mb * 2**20)
    for i in range(0, len(block), _PAGE):
        block[i] = 1
    t1 = time.perf_counter()
    time.sleep(p.seconds)
    t2 = time.perf_counter()
    return Output(
        result={"slept_s": t2 - t1, "alloc_mb": p.alloc_mb},
        load_ms=(t1 - t0) * 1e3,
        compute_ms=(t2 - t1) * 1e3,
    )
