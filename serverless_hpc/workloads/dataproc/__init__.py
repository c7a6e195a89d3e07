"""``dataproc``: per-class pixel statistics of Fashion-MNIST, computed map/reduce style.

Each invocation (the *map*) aggregates a shard ``[start, end)`` of a split; the batch's
combine step (the *reduce*, in the driver, no numpy) adds the shards' integer sums, so the
reduced result equals the single-shard computation *exactly* at every fan-out, which the
run's check verifies through the reduced result's digest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from serverless_hpc.data.catalog import NUM_CLASSES, SPLIT_SIZES, SPLITS
from serverless_hpc.workloads.spec import (
    FANOUT_PANELS,
    Check,
    Option,
    WorkloadSpec,
    combine_failures,
)

_SUMMED = ("count", "sum", "sumsq", "nonzero")


def reduce_partials(partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
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
        for _ in range(NUM_CLASSES)
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


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The batch's reduce and the SHA-256 of its canonical JSON."""
    reduced = reduce_partials(results)
    canonical = json.dumps(reduced, sort_keys=True, separators=(",", ":"))
    return {
        "reduced_n": reduced["n"],
        "reduced_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
    }


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """A shard's record keeps its range, not its per-class sums: the batch's reduce (and its
    digest) is in the batch line, and the sums are most of a record's size."""
    return {k: v for k, v in result.items() if k != "classes"}


def check(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every fan-out must reduce to the identical result; every batch must reduce at all."""
    out: list[Check] = []
    mine = list(batches)
    said = [b.get("reduced_sha256") for b in mine]
    digests = {d for d in said if isinstance(d, str) and d}
    if digests:
        reduced = sum(1 for d in said if isinstance(d, str) and d)
        out.append(
            Check(
                f"{SPEC.name}: every fan-out reduces to the identical result",
                len(digests) == 1,
                f"{len(digests)} distinct reduced result(s) over {reduced} batches",
            )
        )
    out += combine_failures(SPEC.name, mine, "partial results can be reduced")
    return out


def _size(params: Mapping[str, Any]) -> int:
    split = params.get("split", "test")
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_SIZES)}, got {split!r}")
    return SPLIT_SIZES[split]


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="per-class pixel statistics, map/reduce over shards of a split (exact reduce)",
    function_module=f"{__name__}.function",
    memory_mb=2048,
    # Runs in a default OpenWhisk's 512 MB ceiling (numpy and LiteRT, no TensorFlow).
    min_memory_mb=512,
    timeout_s=120.0,
    order=30,
    plan_params={"split": "train"},
    options=(
        Option(
            "split",
            str,
            "split to aggregate (train: 60,000 images)",
            choices=SPLITS,
            flag="dataproc_split",
        ),
        Option("start", int, "first image", 0, 59_999),
        Option("end", int, "end of the images (default: the split's)", 1, 60_000, nullable=True),
        Option("bins", int, "histogram bins (a power of two)", 1, 256),
    ),
    splits=lambda params: (str(params.get("split", "test")),),
    input_size=_size,
    combine=combine,
    compact=compact,
    combine_needs_all=True,
    check=check,
    panels=FANOUT_PANELS,
)
