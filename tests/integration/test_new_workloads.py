"""A workload is its package: matmul and a copied package run through the driver unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_hpc.driver import BenchConfig, run
from serverless_hpc.rundir import read_records
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.workloads.spec import WorkloadSpec

pytestmark = pytest.mark.integration


def _bench(tmp_path: Path, workload: str, params: dict, **settings: object) -> list[dict]:
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas", "standalone"),
        workloads=(workload,),
        shards=(1, 4),
        repeats=1,
        modes=("natural",),
        params={workload: params},
        settings=TargetSettings(log_dir=tmp_path / "logs", **settings),  # type: ignore[arg-type]
        run_id="new-workloads",
    )
    result = run(cfg)
    assert result.failed == 0
    return [json.loads(line) for line in (cfg.out / "batches.jsonl").read_text().splitlines()]


def test_matmul_runs_on_both_local_targets_and_checks_c(tmp_path: Path) -> None:
    # GIVEN 128x128 matrices in 32-blocks WHEN benchmarked at fan-outs 1 and 4
    batches = _bench(tmp_path, "matmul", {"n": 128, "block": 32})
    # THEN every batch assembled C and it equals the single-node product
    assert {(b["target"], b["shards"]) for b in batches} == {
        (t, s) for t in ("local-faas", "standalone") for s in (1, 4)
    }
    assert all(b["max_rel_error"] <= 1e-9 for b in batches)
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert all(r["result"]["gflops"] > 0 and "blocks" not in r["result"] for r in records)


def test_a_copied_workload_package_runs_with_no_other_edit(
    tmp_path: Path, data_dir: Path, copy_workload: Callable[[str, str], WorkloadSpec]
) -> None:
    # GIVEN dataproc copied under a new name (its instances are new processes: they find
    # the copy on disk as the driver does)
    copy_workload("dataproc", "dataproc_copy")
    # WHEN the driver benchmarks it on both local targets
    batches = _bench(tmp_path, "dataproc_copy", {"split": "test"}, data_dir=data_dir)
    # THEN it ran and its combine step reduced every fan-out to the identical result
    assert {b["workload"] for b in batches} == {"dataproc_copy"}
    assert len({b["reduced_sha256"] for b in batches}) == 1
