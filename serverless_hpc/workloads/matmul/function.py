"""``matmul``'s function side: blocks ``[start, end)`` of C = A·B with numpy's BLAS.

The seed mode generates the slices of A and B and returns the blocks in the reply. The
staged mode (``staged``; see the package docstring) works through the store, under the job's
scratch prefix: ``a/<i>`` row-panel ``i`` of A (block x N), ``b/<j>`` column-panel ``j`` of B
(N x block), ``c/<k>`` block ``k`` of C (row-major); phases ``stage``, ``compute``, ``verify``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads.base import Context, Output, parse_params
from serverless_hpc.workloads.matmul import (
    CHECK_BLOCKS,
    MAX_N_STAGED,
    MIN_BLOCK,
    MIN_N,
    SPEC,
    a_rows,
    b_cols,
    check_shape,
    check_staged,
    encode_block,
)
from serverless_hpc.workloads.roundio import RoundIO, RoundParams, with_round_io


class MatmulParams(RoundParams):
    """The matrices (size, block size, seed) and which blocks of C this shard computes."""

    n: int = Field(default=512, ge=MIN_N, le=MAX_N_STAGED)
    block: int = Field(default=128, ge=MIN_BLOCK, le=MAX_N_STAGED)
    seed: int = Field(default=7, ge=0, le=2**31 - 1)
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, gt=0)
    #: Work through the store (panels staged once, C written back) instead of the reply.
    staged: bool = False
    phase: Literal["stage", "compute", "verify"] = "compute"

    @model_validator(mode="after")
    def _fits(self) -> MatmulParams:
        try:
            nb = (
                check_staged(self.n, self.block) if self.staged else check_shape(self.n, self.block)
            )
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if self.phase != "compute" and not self.staged:
            raise ValueError(f"phase {self.phase!r} is for the staged mode (staged: true)")
        total = 2 * nb if self.phase == "stage" else nb * nb
        end = total if self.end is None else self.end
        if not self.start < end <= total:
            raise ValueError(f"blocks [start, end) must lie within 0..{total}")
        return self


def preload() -> None:
    """Import numpy now, so a cold start's import cost is measured as such."""
    import numpy  # noqa: F401


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Compute this shard's blocks of C and their GFLOP/s (or a staged job's phase)."""
    p = parse_params(MatmulParams, raw)
    if p.staged:
        rio = RoundIO.open(ctx, SPEC.name, p.job)
        phase = {"stage": _stage, "compute": _compute_staged, "verify": _verify}[p.phase]
        return with_round_io(phase(p, rio))
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


def _base(p: MatmulParams, **more: Any) -> dict[str, Any]:
    return {"n": p.n, "block": p.block, "seed": p.seed, "staged": True, "phase": p.phase, **more}


def _stage(p: MatmulParams, rio: RoundIO) -> Output:
    """Generate panels ``[start, end)`` of the 2·(N/block): A's row-panels, then B's
    column-panels; write each to the store."""
    nb = p.n // p.block
    end = 2 * nb if p.end is None else p.end
    gen_s = 0.0
    for x in range(p.start, end):
        t0 = time.perf_counter()
        panel = a_rows(p.seed, x, p.block, p.n) if x < nb else b_cols(p.seed, x - nb, p.block, p.n)
        gen_s += time.perf_counter() - t0
        rio.put_array(f"a/{x}" if x < nb else f"b/{x - nb}", panel)
    return Output(
        result=_base(p, start=p.start, end=end, items=end - p.start),
        load_ms=0.0,
        compute_ms=gen_s * 1e3,
        extra_timings=rio.timings(),
    )


def _panel(rio: RoundIO, name: str, shape: tuple[int, int]) -> Any:
    import numpy as np

    panel = rio.get_array(name)
    if panel.shape != shape or panel.dtype != np.float64:
        raise InvalidRequest(f"{rio.key(name)}: {panel.shape} {panel.dtype}, not {shape} float64")
    return panel


def _compute_staged(p: MatmulParams, rio: RoundIO) -> Output:
    """Blocks ``[start, end)`` of C from the staged panels, each written to the store."""
    nb = p.n // p.block
    end = nb * nb if p.end is None else p.end
    compute_s = 0.0
    row_i, rows = -1, None
    for k in range(p.start, end):
        i, j = divmod(k, nb)
        if i != row_i:  # consecutive blocks share their row-panel of A
            row_i, rows = i, _panel(rio, f"a/{i}", (p.block, p.n))
        cols = _panel(rio, f"b/{j}", (p.n, p.block))
        t0 = time.perf_counter()
        c = rows @ cols
        compute_s += time.perf_counter() - t0
        del cols
        rio.put_array(f"c/{k}", c)
    flops = 2.0 * p.n * p.block * p.block * (end - p.start)
    result = _base(
        p,
        start=p.start,
        end=end,
        items=end - p.start,
        flops=flops,
        compute_s=compute_s,
        gflops=flops / compute_s / 1e9 if compute_s > 0 else None,
    )
    return Output(
        result=result, load_ms=0.0, compute_ms=compute_s * 1e3, extra_timings=rio.timings()
    )


def _verify(p: MatmulParams, rio: RoundIO) -> Output:
    """Every block of C present with its shape; :data:`CHECK_BLOCKS` of them (chosen by the
    seed) recomputed from the panels and compared."""
    import numpy as np

    nb = p.n // p.block
    picked = set(
        np.random.default_rng([p.seed, 2])
        .choice(nb * nb, min(CHECK_BLOCKS, nb * nb), replace=False)
        .tolist()
    )
    worst = 0.0
    compute_s = 0.0
    for k in range(nb * nb):
        c = _panel(rio, f"c/{k}", (p.block, p.block))
        if k in picked:
            i, j = divmod(k, nb)
            a, b = _panel(rio, f"a/{i}", (p.block, p.n)), _panel(rio, f"b/{j}", (p.n, p.block))
            t1 = time.perf_counter()
            ref = a @ b
            compute_s += time.perf_counter() - t1
            scale = float(np.max(np.abs(ref))) or 1.0
            worst = max(worst, float(np.max(np.abs(c - ref))) / scale)
    result = _base(p, max_rel_error=worst, checked_blocks=len(picked), of_blocks=nb * nb)
    return Output(
        result=result, load_ms=0.0, compute_ms=compute_s * 1e3, extra_timings=rio.timings()
    )
