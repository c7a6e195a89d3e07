"""``dataproc``'s function side: the *map* step over one shard.

Each invocation takes a shard ``[start, end)`` of a split and returns, per class:
the image count, the sum and sum of squares of all pixel values, the count of non-zero
("ink") pixels and a histogram of pixel intensities. Every one of these is an integer sum,
so the reduce (in this package's ``__init__``, run by the driver) merges shards by plain
addition and the reduced result equals the single-shard computation *exactly*.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.workloads.base import Context, Output, Params, parse_params


class DataprocParams(Params):
    """Which slice of which split to aggregate, with how many histogram bins."""

    split: fm.Split = "test"
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, gt=0)
    bins: int = 16

    @field_validator("bins")
    @classmethod
    def _bins_divide_256(cls, v: int) -> int:
        if v < 1 or v > 256 or 256 % v:
            raise ValueError("must be a power of two between 1 and 256")
        return v


def preload() -> None:
    """Nothing heavy to import: numpy is already loaded with this module."""


def class_stats(images: np.ndarray, labels: np.ndarray, bins: int) -> list[dict[str, Any]]:
    """The map step: integer aggregates per class over ``images``/``labels``."""
    # Bin index = pixel >> log2(256 / bins); a shift, since 256 itself does not fit in uint8.
    shift = (256 // bins).bit_length() - 1
    out = []
    flat = images.reshape(len(images), -1)
    for c in range(fm.NUM_CLASSES):
        pix = flat[labels == c]
        wide = pix.astype(np.int64)
        out.append(
            {
                "count": len(pix),
                "sum": int(wide.sum()),
                "sumsq": int((wide * wide).sum()),
                "nonzero": int(np.count_nonzero(pix)),
                "hist": np.bincount((pix >> shift).ravel(), minlength=bins).astype(int).tolist(),
            }
        )
    return out


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Aggregate one shard."""
    p = parse_params(DataprocParams, raw)
    t0 = time.perf_counter()
    images, labels = fm.load_split(p.split, ctx.data_dir)
    end = len(images) if p.end is None else p.end
    try:
        fm.validate_range(p.start, end, len(images), what="params")
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    t1 = time.perf_counter()
    classes = class_stats(images[p.start : end], labels[p.start : end], p.bins)
    t2 = time.perf_counter()
    result = {
        "split": p.split,
        "bins": p.bins,
        "start": p.start,
        "end": end,
        "n": end - p.start,
        "classes": classes,
    }
    return Output(result=result, load_ms=(t1 - t0) * 1e3, compute_ms=(t2 - t1) * 1e3)
