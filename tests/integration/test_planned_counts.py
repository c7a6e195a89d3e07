"""The planned count has one author, the driver: run.json says it, the dashboard shows it.

Each case runs the real driver against an instant test double (no workload runs) and reads
the run back through the dashboard's own API: a memory sweep, a data-parallel training and a
chained one. The dashboard never rebuilds a configuration to count anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import driver, targets
from serverless_hpc.driver import BenchConfig
from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import read_records
from serverless_hpc.serve.runs import RunManager
from serverless_hpc.targets.base import Target, TargetSettings


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result, "timings": {}, "cold_start": False, "runtime": {}}


class InstantDouble(Target):
    """Test double: answers every request at once; a training ends after its epochs."""

    name = "local-faas"
    supports_memory = True
    supports_forced_cold = True

    def __init__(self, settings: TargetSettings) -> None:
        super().__init__(settings)
        self.sizes: list[int] = []

    def set_memory(self, workload: str, memory_mb: int) -> None:
        self.sizes.append(memory_mb)

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        p = request["params"]
        if request["workload"] != "train":
            return Outcome(response=_ok({"slept_s": 0.0}), cold=force_cold)
        if "worker" in p:
            return Outcome(response=_ok({"status": "done", "items": 10}), cold=False)
        rounds = int(p["epochs"]) * int(p.get("syncs_per_epoch", 1))
        last = "round" not in p or int(p["round"]) + 1 == rounds
        epoch = int(p.get("round", int(p["epochs"]) - 1)) + 1
        result = {"status": "done" if last else "continue", "epoch": epoch, "progress": []}
        if last:
            result.update(version="v1", test_accuracy=0.9)
        return Outcome(response=_ok(result), cold=False)


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> None:
    def create(name: str, settings: TargetSettings) -> Target:
        return InstantDouble(settings)

    monkeypatch.setattr(targets, "create", create)


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(
            {"workloads": ("sleep",), "shards": (1, 3), "memory_mb": (512, 1024)},
            id="memory-sweep",
        ),
        pytest.param(
            {"workloads": ("train",), "train_workers": (1, 4), "params": {"train": {"epochs": 3}}},
            id="data-parallel-and-chain",
        ),
        pytest.param(
            {"workloads": ("train",), "train_repeats": 2, "params": {"train": {"epochs": 2}}},
            id="chain",
        ),
    ],
)
def test_the_dashboard_shows_the_count_the_driver_wrote(
    tmp_path: Path, instant: None, plan: dict[str, Any]
) -> None:
    # GIVEN a run of the real driver
    results = tmp_path / "results"
    cfg = BenchConfig(
        out=results / "r1",
        targets=("local-faas",),
        repeats=2,
        cold_repeats=1,
        run_id="r1",
        **plan,
    )
    result = driver.run(cfg)
    meta = json.loads((cfg.out / "run.json").read_text())
    # THEN run.json's count is what the run left, and the dashboard shows that very count
    assert meta["planned_invocations"] == len(read_records(cfg.out / "records.jsonl"))
    assert result.failed == 0
    detail = RunManager(results).detail("r1")
    assert detail["planned"] == meta["planned_invocations"]
    assert detail["done"] == meta["planned_invocations"]


def test_the_terminal_counts_invocations_and_epochs_on_two_bars(
    tmp_path: Path, instant: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a chained 3-epoch training and a fan-out on one target, run from the CLI
    from serverless_hpc.cli import main

    code = main(
        [
            "bench",
            "--targets",
            "local-faas",
            "--workloads",
            "train,sleep",
            "--train-epochs",
            "3",
            "--shards",
            "1",
            "--repeats",
            "1",
            "--modes",
            "natural",
            "--out",
            str(tmp_path / "run"),
            "--data-dir",
            str(data_dir),  # the CLI checks the dataset a local training would read
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    # THEN one bar counts the invocations (the chain as one), another the chain's epochs,
    # each to its own total, so neither ETA mixes milliseconds with minutes
    assert re.search(r"invocations: 100%[^\n\r]*\b2/2\b", err)  # the chain and one sleep
    assert re.search(r"epochs: 100%[^\n\r]*\b3/3\b", err)
