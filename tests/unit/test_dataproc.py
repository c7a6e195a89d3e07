"""dataproc: the map/reduce result is exact, whatever the fan-out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_hpc.workloads.dataproc import reduce_partials
from serverless_hpc.workloads.dataproc.function import class_stats
from serverless_hpc.workloads.spec import split_ranges


def _partial(images: np.ndarray, labels: np.ndarray, start: int, end: int, bins: int) -> dict:
    return {
        "split": "test",
        "bins": bins,
        "start": start,
        "end": end,
        "n": end - start,
        "classes": class_stats(images[start:end], labels[start:end], bins),
    }


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    shards=st.integers(1, 20),
    bins=st.sampled_from([1, 2, 16, 256]),
)
def test_reduce_of_any_sharding_equals_the_single_shard(
    seed: int, n: int, shards: int, bins: int
) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    shards = min(shards, n)
    whole = reduce_partials([_partial(images, labels, 0, n, bins)])
    parts = [_partial(images, labels, s.start, s.end, bins) for s in split_ranges(n, shards)]
    assert reduce_partials(reversed(parts)) == whole  # order of arrival does not matter


def test_histogram_counts_every_pixel() -> None:
    images = np.full((3, 28, 28), 255, np.uint8)
    labels = np.array([1, 1, 2], np.uint8)
    stats = class_stats(images, labels, 16)
    assert stats[1]["hist"][-1] == 2 * 784 and sum(stats[1]["hist"]) == 2 * 784
    assert stats[0]["count"] == 0 and sum(stats[0]["hist"]) == 0


def test_overlapping_shards_are_refused() -> None:
    images = np.zeros((10, 28, 28), np.uint8)
    labels = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="shards overlap"):
        reduce_partials([_partial(images, labels, 0, 6, 16), _partial(images, labels, 5, 10, 16)])
