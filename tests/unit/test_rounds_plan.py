"""The driver's plan of jobs in rounds: counted ahead, refused ahead, unique job ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_hpc.driver import BenchConfig, BenchError, count_invocations, plan, plan_size
from serverless_hpc.driver.plan import job_id


def _cfg(tmp_path: Path, workload: str, params: dict, shards: tuple[int, ...]) -> BenchConfig:
    return BenchConfig(
        out=tmp_path,
        targets=("local-faas",),
        workloads=(workload,),
        shards=shards,
        repeats=2,
        modes=("natural",),
        params={workload: params},
        run_id="r",
    )


def test_a_job_in_rounds_counts_every_round_s_invocations(tmp_path: Path) -> None:
    # stencil: ceil(7 / 2) = 4 rounds of `tiles` workers, then one assembling step
    cfg = _cfg(tmp_path, "stencil", {"n": 32, "steps": 7, "steps_per_round": 2}, (1, 4))
    assert count_invocations(cfg, lambda _: False) == 2 * ((4 * 1 + 1) + (4 * 4 + 1))
    # kmers: M stagers, M mappers, R reducers, one check
    cfg = _cfg(tmp_path, "kmers", {"reducers": 3}, (2,))
    assert count_invocations(cfg, lambda _: False) == 2 * (2 + 2 + 3 + 1)
    # matmul's seed mode is a plain batch: one invocation a shard
    cfg = _cfg(tmp_path, "matmul", {}, (1, 4))
    assert count_invocations(cfg, lambda _: False) == 2 * 5


def test_a_fan_out_the_job_cannot_run_with_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    # a 3x3 grid has no 1x5 tiling
    cfg = _cfg(tmp_path, "stencil", {"n": 3}, (5,))
    with pytest.raises(BenchError, match="--param stencil at 5 shards: the 3x3 grid cannot"):
        plan_size(cfg)


def test_job_ids_differ_between_the_batches_of_a_run(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "stencil", {}, (1, 4))
    ids = {job_id(b, cfg.run_id) for b in plan(cfg, "local-faas")}
    assert len(ids) == 4  # two fan-outs x two repeats
    assert all(i.startswith("r/local-faas-natural-s") for i in ids)
