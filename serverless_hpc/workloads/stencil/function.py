"""``stencil``'s function side: one tile's round, the assembling step, or the in-memory run.

Store layout of a job (under its scratch prefix): ``r<k>/t<i>`` is tile ``i`` after round
``k``; ``r<k>/h<i>-<j>`` the piece of tile ``i`` that tile ``j``'s halo needs in round
``k + 1``. Round 0 generates its block of the initial field from the seed instead of
reading it (the generator is advanced to the block's rows).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads.base import Context, Output, parse_params
from serverless_hpc.workloads.roundio import RoundIO, RoundParams, with_round_io
from serverless_hpc.workloads.stencil import ALPHA, MAX_N, MAX_STEPS, MIN_N, SPEC, rounds_of


class StencilParams(RoundParams):
    """The problem (N, T, seed, alpha), the halo depth, and this request's part of the job."""

    n: int = Field(default=64, ge=MIN_N, le=MAX_N)
    steps: int = Field(default=8, ge=1, le=MAX_STEPS)
    steps_per_round: int = Field(default=2, ge=1, le=MAX_STEPS)
    seed: int = Field(default=1, ge=0, le=2**63 - 1)
    alpha: float = Field(default=ALPHA, gt=0.0, le=0.25)
    #: ``store``: tiles are functions exchanging halos through the store (the default);
    #: ``memory``: this one invocation runs every tile as a process of this machine.
    exchange: Literal["store", "memory"] = "store"
    #: ``step``: advance one tile one round; ``assemble``: the job's combine step.
    phase: Literal["step", "assemble"] = "step"
    #: Whether the final field is also computed in a single process and compared.
    verify: bool = True

    @model_validator(mode="after")
    def _fits(self) -> StencilParams:
        from serverless_hpc.workloads.stencil import tile_ranges

        try:
            tile_ranges(self.n, self.workers)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        stepping = self.exchange == "store" and self.phase == "step"
        if stepping and (self.worker is None or self.worker >= self.workers):
            raise ValueError(f"worker must be a tile index below workers={self.workers}")
        if self.exchange == "store" and self.round >= rounds_of(self.model_dump()):
            raise ValueError(f"round {self.round} is past the job's last round")
        return self


def preload() -> None:
    """Import numpy now, so a cold start's import cost is measured as such."""
    import numpy  # noqa: F401


def _problem(p: StencilParams) -> dict[str, Any]:
    return {
        "n": p.n,
        "steps": p.steps,
        "seed": p.seed,
        "alpha": p.alpha,
        "steps_per_round": p.steps_per_round,
        "tiles": p.workers,
        "exchange": p.exchange,
        "rounds": rounds_of(p.model_dump()) if p.exchange == "store" else 1,
    }


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """One tile's round, the assembling step, or (``exchange=memory``) the whole job."""
    p = parse_params(StencilParams, raw)
    if p.exchange == "memory":
        from serverless_hpc.workloads.stencil.node import run_in_memory

        return with_round_io(run_in_memory(p.model_dump(), _problem(p), ctx))
    rio = RoundIO.open(ctx, SPEC.name, p.job)
    if p.phase == "assemble":
        return with_round_io(_assemble(p, rio))
    return with_round_io(_step(p, rio))


def _step(p: StencilParams, rio: RoundIO) -> Output:
    from serverless_hpc.workloads.stencil import kernel

    assert p.worker is not None  # checked by StencilParams
    h, me, k = p.steps_per_round, p.worker, p.round
    boxes = kernel.tiles(p.n, p.workers)
    tile = boxes[me]
    ext = tile.grow(h, p.n)
    t0 = time.perf_counter()
    if k == 0:
        block = kernel.initial_rows(p.n, p.seed, ext.r0, ext.r1)[:, ext.c0 : ext.c1]
        gen_s, block = time.perf_counter() - t0, block.copy()
    else:
        import numpy as np

        gen_s = 0.0
        block = np.empty((ext.r1 - ext.r0, ext.c1 - ext.c0))
        block[tile.within(ext)] = rio.get_array(f"r{k - 1}/t{me}")
        for src, piece in kernel.halo_sources(boxes, me, h, p.n):
            block[piece.within(ext)] = rio.get_array(f"r{k - 1}/h{src}-{me}")
    steps = min(h, p.steps - k * h)
    t1 = time.perf_counter()
    block = kernel.advance(block, steps, p.alpha)
    compute_s = time.perf_counter() - t1
    mine = block[tile.within(ext)]
    rio.put_array(f"r{k}/t{me}", mine)
    if k < rounds_of(p.model_dump()) - 1:  # the last round's halos are never read
        for dst, piece in kernel.halo_targets(boxes, me, h, p.n):
            rio.put_array(f"r{k}/h{me}-{dst}", block[piece.within(ext)])
    result = {
        **_problem(p),
        "round": k,
        "worker": me,
        "steps_done": steps,
        "cells": tile.cells,
        "cells_computed": (ext.r1 - ext.r0) * (ext.c1 - ext.c0) * steps,
        "items": tile.cells,
    }
    return Output(
        result=result, load_ms=gen_s * 1e3, compute_ms=compute_s * 1e3, extra_timings=rio.timings()
    )


def _assemble(p: StencilParams, rio: RoundIO) -> Output:
    import numpy as np

    from serverless_hpc.workloads.stencil import kernel

    last = rounds_of(p.model_dump()) - 1
    field = np.full((p.n, p.n), np.nan)
    for i, box in enumerate(kernel.tiles(p.n, p.workers)):
        part = rio.get_array(f"r{last}/t{i}")
        if part.shape != (box.r1 - box.r0, box.c1 - box.c0) or part.dtype != np.float64:
            raise InvalidRequest(
                f"tile {i} of round {last} has shape {part.shape} {part.dtype}, "
                f"not {(box.r1 - box.r0, box.c1 - box.c0)} float64"
            )
        field[box.r0 : box.r1, box.c0 : box.c1] = part
    t0 = time.perf_counter()
    result: dict[str, Any] = {**_problem(p), **kernel.summarise(field)}
    if p.verify:
        ref = kernel.reference(p.n, p.steps, p.seed, p.alpha)
        result["matches_single_process"] = kernel.digest(ref) == result["sha256"]
    return Output(
        result=result,
        load_ms=0.0,
        compute_ms=(time.perf_counter() - t0) * 1e3,
        extra_timings=rio.timings(),
    )
