"""matmul: blocks of C computed apart, assembled and checked against one product."""

from __future__ import annotations

import numpy as np
import pytest

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads import matmul
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.matmul import function


def _results(n: int, block: int, shards: int, seed: int = 3) -> list[dict]:
    reqs = matmul.SPEC.requests({"n": n, "block": block, "seed": seed}, shards)
    return [function.run(p, Context()).result for p, _ in reqs]


@pytest.mark.parametrize("shards", [1, 3, 16])
def test_blocks_assemble_into_the_single_node_product(shards: int) -> None:
    # GIVEN 64x64 matrices in 16x16 blocks, computed by 1, 3 or 16 functions
    out = matmul.combine(_results(64, 16, shards))
    # THEN C equals A.B within the bound, whatever the fan-out
    assert out["max_rel_error"] <= matmul.MAX_REL_ERROR
    (check,) = matmul.check([{"max_rel_error": out["max_rel_error"]}])
    assert check.ok


def test_the_reference_is_the_product_of_the_generated_matrices() -> None:
    a = np.vstack([matmul.a_rows(5, i, 8, 32) for i in range(4)])
    b = np.hstack([matmul.b_cols(5, j, 8, 32) for j in range(4)])
    np.testing.assert_array_equal(matmul.reference(32, 8, 5), a @ b)


def test_a_wrong_block_fails_the_check() -> None:
    # GIVEN one block of C altered
    results = _results(32, 8, 2)
    bad = np.full((8, 8), 1.0)
    results[1]["blocks"][0]["data"] = matmul.encode_block(bad)
    out = matmul.combine(results)
    # THEN the assembled C is off and the run's check says so
    assert out["max_rel_error"] > matmul.MAX_REL_ERROR
    (check,) = matmul.check([out])
    assert not check.ok and "max relative error" in check.detail


def test_a_missing_or_duplicated_block_cannot_be_combined() -> None:
    results = _results(32, 8, 4)
    with pytest.raises(ValueError, match="4 of 16 blocks of C are missing"):
        matmul.combine(results[:-1])
    with pytest.raises(ValueError, match="duplicated"):
        matmul.combine([*results, results[0]])


def test_each_record_reports_its_gflops_and_keeps_no_block_data() -> None:
    (result,) = _results(64, 32, 1)
    assert result["flops"] == 2.0 * 64 * 32 * 32 * 4
    assert result["gflops"] is not None and result["gflops"] > 0
    compact = matmul.SPEC.compact(result)
    assert "blocks" not in compact and compact["gflops"] == result["gflops"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 100, "block": 30}, "block must divide n=100"),
        ({"n": 8}, "params.n"),
        ({"n": 64, "block": 16, "start": 5, "end": 40}, "must lie within 0..16"),
    ],
)
def test_bad_parameters_are_refused_naming_them(params: dict, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        function.run(params, Context())


def test_the_plan_refuses_more_shards_than_blocks() -> None:
    assert matmul.SPEC.max_shards({}) == 16  # the defaults: n 512 in 128-blocks
    with pytest.raises(ValueError, match="cannot split 16 items into 17"):
        matmul.SPEC.requests({}, 17)


# -- the staged mode: panels and C through the store ------------------------------------


@pytest.mark.parametrize("functions", [1, 3, 16])
def test_staged_blocks_written_to_the_store_are_the_product(tmp_path, functions: int) -> None:
    # GIVEN A and B staged as panels and C written back, by 1, 3 or 16 functions
    from serverless_hpc.store import open_store
    from serverless_hpc.workloads.roundio import bytes_array, run_inline

    ctx = Context(store_uri=str(tmp_path / "store"))
    params = {"n": 64, "block": 16, "seed": 3, "staged": True, "job": "m"}
    calls = run_inline(matmul.SPEC, params, functions, ctx)
    # THEN a staging round, a compute round, then the check
    roles = [(c.round, c.role) for c in calls]
    assert roles == [(0, "stage")] * min(functions, 8) + [(1, "compute")] * functions + [
        (1, "combine")
    ]
    # AND C in the store is A.B, block by block
    store = open_store(ctx.store_uri)
    ref = matmul.reference(64, 16, 3)
    for k in range(16):
        i, j = divmod(k, 4)
        got = bytes_array(store.get_bytes(f"scratch/matmul/m/c/{k}"), "c")
        np.testing.assert_allclose(got, ref[i * 16 : (i + 1) * 16, j * 16 : (j + 1) * 16])
    # AND no reply carries a block; every compute reply has its GFLOP/s and store I/O
    assert all("blocks" not in c.output.result for c in calls)
    compute = [c for c in calls if c.role == "compute"]
    assert all(c.output.result["gflops"] > 0 for c in compute)
    assert all(c.output.extra_timings["bytes_read"] >= 2 * 8 * 16 * 64 for c in compute)
    out = matmul.combine([calls[-1].output.result])
    assert out["max_rel_error"] <= matmul.MAX_REL_ERROR and out["checked_blocks"] == 4
    (check,) = matmul.check([out])
    assert check.ok


def test_a_wrong_staged_block_fails_the_check(tmp_path) -> None:
    from serverless_hpc.store import open_store
    from serverless_hpc.workloads.roundio import array_bytes, run_inline

    ctx = Context(store_uri=str(tmp_path / "store"))
    params = {"n": 32, "block": 16, "seed": 3, "staged": True, "job": "m"}
    run_inline(matmul.SPEC, params, 2, ctx)
    store = open_store(ctx.store_uri)
    for k in range(4):  # every block wrong: whichever the check picks
        store.put_bytes(f"scratch/matmul/m/c/{k}", array_bytes(np.ones((16, 16))))
    verify = {**params, "phase": "verify", "round": 1, "workers": 2}
    out = matmul.combine([function.run(verify, ctx).result])
    (check,) = matmul.check([out])
    assert not check.ok


def test_the_staged_mode_allows_hpc_sizes_within_a_function_s_memory() -> None:
    assert matmul.plan_rounds({"n": 16384, "block": 1024, "staged": True}, 16) == 2
    assert matmul.plan_rounds({"n": 512, "block": 128}, 4) == 0  # the seed mode: no rounds
    with pytest.raises(ValueError, match="GiB a function"):
        matmul.check_staged(65536, 8192)
    with pytest.raises(InvalidRequest, match="n must be between 16 and 4096"):
        function.run({"n": 8192, "block": 1024}, Context())  # beyond the seed mode's bound
