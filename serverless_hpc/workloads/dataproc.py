"""``dataproc``: per-class pixel statistics of Fashion-MNIST, computed map/reduce style.

Each invocation (the *map*) takes a shard ``[start, end)`` of a split and returns, per class:
the image count, the sum and sum of squares of all pixel values, the count of non-zero
("ink") pixels and a histogram of pixel intensities. Every one of these is an integer sum,
so :func:`reduce_partials` merges shards by plain addition and the reduced result equals the
single-shard computation *exactly*, whatever the fan-out; :func:`finalize` then derives means
and standard deviations. The reduce runs in the driver and needs no numpy.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.workloads.base import Context, Output, Params, parse_params

NAME = "dataproc"
_SUMMED = ("count", "sum", "sumsq", "nonzero")


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


def reduce_partials(partials: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge map results of disjoint shards into one, by exact integer addition.

    Shards must share split and bins; their ranges must not overlap. Raises ``ValueError``
    otherwise, since a silently double-counted shard would corrupt every statistic.
    """
    parts = sorted(partials, key=lambda p: p["start"])
    if not parts:
        raise ValueError("nothing to reduce")
    split, bins = parts[0]["split"], parts[0]["bins"]
    for prev, cur in itertools.pairwise(parts):
        if cur["split"] != split or cur["bins"] != bins:
            raise ValueError("partials disagree on split or bins")
        if cur["start"] < prev["end"]:
            raise ValueError(f"shards overlap: [{prev['start']},{prev['end']}) and {cur['start']}")
    classes: list[dict[str, Any]] = [
        {"count": 0, "sum": 0, "sumsq": 0, "nonzero": 0, "hist": [0] * bins}
        for _ in range(fm.NUM_CLASSES)
    ]
    for part in parts:
        for acc, cls in zip(classes, part["classes"], strict=True):
            for k in _SUMMED:
                acc[k] += cls[k]
            acc["hist"] = [a + b for a, b in zip(acc["hist"], cls["hist"], strict=True)]
    return {
        "split": split,
        "bins": bins,
        "start": parts[0]["start"],
        "end": parts[-1]["end"],
        "n": sum(p["n"] for p in parts),
        "classes": classes,
    }


def finalize(reduced: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-class mean, standard deviation and ink coverage from a reduced result."""
    pixels = 28 * 28
    rows = []
    for c, cls in enumerate(reduced["classes"]):
        n = cls["count"] * pixels
        mean = cls["sum"] / n if n else math.nan
        var = cls["sumsq"] / n - mean * mean if n else math.nan
        rows.append(
            {
                "class": c,
                "name": fm.CLASS_NAMES[c],
                "count": cls["count"],
                "mean": mean,
                "std": math.sqrt(max(var, 0.0)) if n else math.nan,
                "ink": cls["nonzero"] / n if n else math.nan,
            }
        )
    return rows


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
