"""``classify``: label test images ``[start, end)`` with the exported LiteRT model, in one batch.

Fanned out: a batch splits the images into contiguous ranges, one per function. Its combined
result is the accuracy over every shard, which must be identical at every fan-out (same
model, same images).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from serverless_hpc.data.catalog import SPLIT_SIZES
from serverless_hpc.workloads.spec import (
    FANOUT_PANELS,
    MODEL_NAME,
    Check,
    Option,
    StoreAccess,
    WorkloadSpec,
)

#: The model bundle classify reads (and train writes).
MODEL = "fashion-cnn"
#: Test images a request classifies unless it says otherwise (the plan's and the function's).
DEFAULT_IMAGES = 3000


def _size(params: Mapping[str, Any]) -> int:
    start, end, limit = int(params.get("start", 0)), int(params["end"]), SPLIT_SIZES["test"]
    if not 0 <= start < end <= limit:
        raise ValueError(f"images [start, end) = [{start}, {end}) must lie within 0..{limit}")
    return end - start


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy over every successful shard of a batch, and the model versions used."""
    n = sum(int(r["n"]) for r in results)
    correct = sum(int(r["correct"]) for r in results)
    versions = sorted({str(r["model_version"]) for r in results if r.get("model_version")})
    return {"classified": n, "accuracy": correct / n if n else None, "model_versions": versions}


def check(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Accuracy must be identical at every fan-out of a target (same model, same images)."""
    per_target: dict[str, set[float]] = defaultdict(set)
    versions: set[str] = set()
    for b in batches:
        acc = b.get("accuracy")
        if isinstance(acc, int | float) and not isinstance(acc, bool):
            per_target[str(b["target"])].add(round(float(acc), 12))
            said = b.get("model_versions")
            if isinstance(said, list):
                versions.update(v for v in said if isinstance(v, str))
    if not per_target:
        return []
    detail = "; ".join(f"{t}: {sorted(v)}" for t, v in sorted(per_target.items()))
    return [
        Check(
            f"{SPEC.name}: accuracy is identical at every fan-out (same model, same images)",
            all(len(v) == 1 for v in per_target.values()),
            f"{detail} (model versions: {', '.join(sorted(versions))})",
        )
    ]


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="labels test images with the exported LiteRT model, fanned out over functions",
    function_module=f"{__name__}.function",
    store=StoreAccess.READ_MODELS,
    model=MODEL,
    memory_mb=2048,
    # Runs in a default OpenWhisk's 512 MB ceiling (numpy and LiteRT, no TensorFlow).
    min_memory_mb=512,
    timeout_s=60.0,
    order=20,
    plan_params={"model": MODEL, "start": 0, "end": DEFAULT_IMAGES},
    options=(
        Option("end", int, "test images to classify", 1, SPLIT_SIZES["test"], flag="images"),
        Option("start", int, "first test image", 0, SPLIT_SIZES["test"] - 1),
        Option("model", str, "model bundle to read", pattern=MODEL_NAME),
        Option("version", str, "model version (default: the latest)", pattern=MODEL_NAME),
        Option("threads", int, "LiteRT threads (default: the CPUs)", 1, 64, nullable=True),
        Option("return_labels", bool, "return each image's label"),
    ),
    accuracy_key="accuracy",
    splits=lambda params: ("test",),
    input_size=_size,
    combine=combine,
    combine_needs_all=True,  # accuracy over part of the images is not the batch's
    check=check,
    panels=FANOUT_PANELS,
)
