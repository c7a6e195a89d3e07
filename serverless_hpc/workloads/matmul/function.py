"""``matmul``'s function side: compute blocks ``[start, end)`` of C = A·B with numpy's BLAS."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, model_validator

from serverless_hpc.workloads.base import Context, Output, Params, parse_params
from serverless_hpc.workloads.matmul import (
    MAX_N,
    MIN_BLOCK,
    MIN_N,
    a_rows,
    b_cols,
    check_shape,
    encode_block,
)


class MatmulParams(Params):
    """The matrices (size, block size, seed) and which blocks of C this shard computes."""

    n: int = Field(default=512, ge=MIN_N, le=MAX_N)
    block: int = Field(default=128, ge=MIN_BLOCK, le=MAX_N)
    seed: int = Field(default=7, ge=0, le=2**31 - 1)
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fits(self) -> MatmulParams:
        try:
            nb = check_shape(self.n, self.block)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        end = nb * nb if self.end is None else self.end
        if not self.start < end <= nb * nb:
            raise ValueError(f"blocks [start, end) must lie within 0..{nb * nb}")
        return self


def preload() -> None:
    """Import numpy now, so a cold start's import cost is measured as such."""
    import numpy  # noqa: F401


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Compute this shard's blocks of C and their GFLOP/s."""
    p = parse_params(MatmulParams, raw)
    nb = p.n // p.block
    end = nb * nb if p.end is None else p.end
    gen_s = compute_s = 0.0
    blocks = []
    rows: dict[int, Any] = {}
    for k in range(p.start, end):
        i, j = divmod(k, nb)
        t0 = time.perf_counter()
        if i not in rows:  # consecutive blocks share their row-block of A
            rows = {i: a_rows(p.seed, i, p.block, p.n)}
        cols = b_cols(p.seed, j, p.block, p.n)
        t1 = time.perf_counter()
        c = rows[i] @ cols
        t2 = time.perf_counter()
        gen_s += t1 - t0
        compute_s += t2 - t1
        blocks.append({"k": k, "data": encode_block(c)})
    flops = 2.0 * p.n * p.block * p.block * (end - p.start)
    result = {
        "n": p.n,
        "block": p.block,
        "seed": p.seed,
        "start": p.start,
        "end": end,
        "flops": flops,
        "compute_s": compute_s,
        "gflops": flops / compute_s / 1e9 if compute_s > 0 else None,
        "blocks": blocks,
    }
    return Output(result=result, load_ms=gen_s * 1e3, compute_ms=compute_s * 1e3)
