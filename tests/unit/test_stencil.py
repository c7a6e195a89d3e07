"""stencil: tiles exchanging halos through the store give the single-process field bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.store import open_store
from serverless_hpc.workloads import stencil
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.roundio import run_inline
from serverless_hpc.workloads.spec import scratch_prefix
from serverless_hpc.workloads.stencil import function, kernel


def _naive(n: int, steps: int, seed: int, alpha: float) -> np.ndarray:
    """The issue's definition, cell by cell in plain Python floats."""
    u = np.random.default_rng(seed).random((n, n))
    u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 0.0
    for _ in range(steps):
        v = u.copy()
        for i in range(1, n - 1):
            for j in range(1, n - 1):
                c = float(u[i, j])
                s = float(u[i - 1, j]) + float(u[i + 1, j])
                s = s + float(u[i, j - 1])
                s = s + float(u[i, j + 1])
                v[i, j] = c + alpha * (s - 4.0 * c)
        u = v
    return u


def test_the_initial_field_is_the_seeded_generator_s_with_a_zero_ring() -> None:
    full = np.random.default_rng(9).random((20, 20))
    full[0, :] = full[-1, :] = full[:, 0] = full[:, -1] = 0.0
    # rows generated apart (the generator advanced past the rows before them) are the same
    parts = [kernel.initial_rows(20, 9, a, b) for a, b in ((0, 3), (3, 11), (11, 20))]
    assert np.array_equal(np.vstack(parts), full)


def test_the_vectorised_step_is_the_definition_bit_for_bit() -> None:
    ref = kernel.reference(12, 5, 4, stencil.ALPHA)
    assert kernel.digest(ref) == kernel.digest(_naive(12, 5, 4, stencil.ALPHA))
    assert ref[0].tolist() == [0.0] * 12 and ref[:, -1].tolist() == [0.0] * 12


@pytest.mark.parametrize(
    ("n", "steps", "per_round", "tiles"),
    [(24, 7, 1, 1), (24, 7, 2, 4), (24, 7, 3, 6), (24, 8, 4, 16), (30, 9, 9, 9), (17, 5, 6, 4)],
)
def test_tiles_through_the_store_equal_the_single_process_run(
    tmp_path: Path, n: int, steps: int, per_round: int, tiles: int
) -> None:
    # GIVEN the problem tiled `tiles` ways with halos `per_round` deep, exchanged through a store
    ctx = Context(store_uri=str(tmp_path / "store"))
    params = {"n": n, "steps": steps, "steps_per_round": per_round, "seed": 3, "job": "t/1"}
    calls = run_inline(stencil.SPEC, params, tiles, ctx)
    # THEN one invocation per tile per round, and one assembling step at the end
    rounds = -(-steps // per_round)
    assert [c.role for c in calls].count("worker") == rounds * tiles
    assert calls[-1].role == "combine" and calls[-1].round == rounds - 1
    final = calls[-1].output.result
    # AND the field is the single-process one bit for bit (digest and the combine's own check)
    ref = kernel.reference(n, steps, 3, stencil.ALPHA)
    assert final["sha256"] == kernel.digest(ref)
    assert final["matches_single_process"] is True
    assert final["sum"] == float(np.sum(ref))
    # AND every round after the first read its inputs from the store, and wrote its tile
    later = [c for c in calls if c.role == "worker" and c.round > 0]
    assert all(c.output.extra_timings["bytes_read"] > 0 for c in later)
    assert all(c.output.extra_timings["bytes_written"] > 0 for c in calls if c.role == "worker")
    batch = stencil.combine([final])
    assert (batch["n"], batch["steps"], batch["seed"], batch["alpha"]) == (n, steps, 3, 0.2)


def test_a_tiling_s_halo_objects_are_under_the_job_s_scratch_prefix(tmp_path: Path) -> None:
    ctx = Context(store_uri=str(tmp_path / "store"))
    run_inline(stencil.SPEC, {"n": 16, "steps": 4, "job": "j"}, 4, ctx)
    root = tmp_path / "store" / scratch_prefix("stencil", "j")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert "r0/h0-1" in names and "r1/t3" in names
    assert open_store(ctx.store_uri).delete_prefix(scratch_prefix("stencil", "j")) == len(names)


def test_a_missing_halo_names_the_object(tmp_path: Path) -> None:
    ctx = Context(store_uri=str(tmp_path / "store"))
    req = {"n": 16, "steps": 4, "round": 1, "worker": 0, "workers": 4, "job": "x"}
    with pytest.raises(Exception, match="no scratch object 'scratch/stencil/x/r0/t0'"):
        function.run(req, ctx)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 8, "workers": 100, "worker": 0}, "cannot be split"),
        ({"n": 16, "workers": 4}, "worker must be"),
        ({"n": 16, "round": 9, "worker": 0}, "past the job's last round"),
        ({"n": 16, "job": "../up", "worker": 0}, "params.job"),
        ({"n": 16, "alpha": 0.3}, "alpha"),
    ],
)
def test_bad_input_names_the_field(tmp_path: Path, params: dict, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        function.run(params, Context(store_uri=str(tmp_path)))


def test_the_check_fails_when_two_tilings_disagree() -> None:
    same = {"n": 8, "steps": 2, "seed": 1, "alpha": 0.2}
    ok = stencil.check([{**same, "sha256": "a"}, {**same, "sha256": "a"}])
    bad = stencil.check([{**same, "sha256": "a"}, {**same, "sha256": "b"}])
    assert ok[0].ok and not bad[0].ok


def test_the_in_memory_node_gives_the_same_field(tmp_path: Path) -> None:
    # GIVEN the same tiles as processes exchanging halos in shared memory (the VM baseline)
    ctx = Context(store_uri=str(tmp_path / "store"))
    params = {"n": 40, "steps": 6, "steps_per_round": 2, "seed": 8, "exchange": "memory"}
    calls = run_inline(stencil.SPEC, params, 4, ctx)
    # THEN one invocation ran the job, and its field is the single-process one
    (call,) = calls
    out = call.output.result
    assert out["sha256"] == kernel.digest(kernel.reference(40, 6, 8, stencil.ALPHA))
    assert out["matches_single_process"] is True
    assert call.output.extra_timings["bytes_written"] == 0.0
    assert not (tmp_path / "store").exists()  # the store was never touched


def test_layouts_are_the_squarest_grid() -> None:
    assert [stencil.layout(t) for t in (1, 4, 6, 7, 16)] == [(1, 1), (2, 2), (2, 3), (1, 7), (4, 4)]
