"""The workload specs: discovery, the invariants every spec keeps, and the light import."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serverless_hpc import workloads
from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads.spec import Range, WorkloadSpec, range_shard, split_ranges


def test_every_workload_package_is_discovered_in_plan_order() -> None:
    specs = workloads.specs()
    assert set(specs) >= {"train", "classify", "dataproc", "matmul", "sleep"}
    # a model's writer runs before its readers
    order = list(specs)
    assert order.index("train") < order.index("classify")
    assert workloads.default_names() == ("train", "classify", "dataproc")


@pytest.mark.parametrize("name", sorted(workloads.specs()))
def test_each_spec_names_its_package_and_a_function_module(name: str) -> None:
    spec = workloads.spec(name)
    assert spec.name == name
    module = importlib.import_module(spec.function_module)
    assert callable(module.run) and callable(module.preload)


@pytest.mark.parametrize("name", [n for n, s in sorted(workloads.specs().items()) if s.fanned_out])
@pytest.mark.parametrize("n", [1, 3, 7])
def test_a_fanned_out_batch_covers_its_input_exactly_once(name: str, n: int) -> None:
    spec = workloads.spec(name)
    total = spec.max_shards({})
    assert total is not None
    shards = spec.requests({}, n)
    assert len(shards) == n
    assert sum(items for _, items in shards) == total
    starts = [p["start"] for p, _ in shards]
    assert starts == sorted(starts)


def test_an_unknown_workload_is_an_invalid_request_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match="field 'workload': unknown workload 'nope'"):
        workloads.spec("nope")


def test_split_ranges_is_near_equal_and_refuses_too_many_shards() -> None:
    assert split_ranges(10, 3) == [Range(0, 4), Range(4, 7), Range(7, 10)]
    with pytest.raises(ValueError, match="cannot split 2 items into 3"):
        split_ranges(2, 3)


def test_reading_the_specs_imports_neither_numpy_nor_pydantic() -> None:
    code = (
        "import sys; from serverless_hpc import workloads; workloads.specs(); "
        "print(sorted(m for m in ('numpy', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_copied_package_is_a_new_workload(
    copy_workload: Callable[[str, str], WorkloadSpec],
) -> None:
    # GIVEN a copy of dataproc under a new name, and nothing else changed
    spec = copy_workload("dataproc", "dataproc_copy")
    # THEN it is a workload of its own, with the original's declarations
    assert spec.name == "dataproc_copy" and "dataproc_copy" in workloads.names()
    assert spec.function_module == "serverless_hpc.workloads.dataproc_copy.function"
    assert spec.timeout_s == workloads.spec("dataproc").timeout_s
    assert not spec.default or "dataproc_copy" in workloads.default_names()


@given(total=st.integers(1, 20000), shards=st.integers(1, 64))
def test_shards_cover_the_range_exactly_once(total: int, shards: int) -> None:
    if shards > total:
        with pytest.raises(ValueError):
            split_ranges(total, shards)
        return
    parts = split_ranges(total, shards)
    assert parts[0].start == 0 and parts[-1].end == total
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_shard_range_is_offset_by_the_batch_start() -> None:
    # classify's batch of test images [100, 130) split three ways keeps its own offset
    assert range_shard({"start": 100, "end": 130}, Range(10, 20)) == {"start": 110, "end": 120}
    assert range_shard({"split": "test"}, Range(0, 5)) == {"split": "test", "start": 0, "end": 5}
