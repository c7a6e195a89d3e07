"""The driver sizes its invocation threads to what may be in flight, and every batch line
records the in-flight limit (so a batch of more shards than could run at once is visible)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from serverless_hpc import targets
from serverless_hpc.contract import success_response
from serverless_hpc.driver import BenchConfig, run
from serverless_hpc.driver.fanout import threads_needed
from serverless_hpc.invocation import Outcome
from serverless_hpc.targets.base import Target, TargetSettings, TimedOutcome


class Capped(Target):
    """A test double of a per-request target that admits 4 invocations at once and counts
    the driver's threads that ever invoked it."""

    name = "capped"
    seen: ClassVar[set[int]] = set()

    @property
    def max_parallel(self) -> int:
        return 4

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        Capped.seen.add(threading.get_ident())
        ok = success_response(
            workload="dataproc",
            result={},
            timings={"load_ms": 0.0, "compute_ms": 1.0},
            cold_start=False,
            runtime={},
        )
        return Outcome(response=ok, cold=False)


class Native(Target):
    """A test double of a batch-native target (its own fan-out)."""

    name = "native"
    batch_native = True

    @property
    def max_parallel(self) -> int:
        return 1000

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        raise AssertionError("a batch-native target is invoked by batch")

    def invoke_batch(
        self, requests: Sequence[dict[str, Any]], *, timeout_s: float, force_cold: bool = False
    ) -> list[TimedOutcome]:
        raise AssertionError("not called here")


def test_threads_are_what_may_be_in_flight_not_the_plan(tmp_path: Path) -> None:
    settings = TargetSettings()
    cfg = BenchConfig(
        out=tmp_path, targets=("standalone",), workloads=("dataproc",), shards=(1, 1000)
    )
    # a per-request target: its limit, not the widest fan-out
    assert threads_needed(cfg, [Capped(settings)]) == 4
    # a batch-native target fans out itself: one thread (no data-parallel rounds planned)
    assert threads_needed(cfg, [Native(settings)]) == 1
    # a fan-out narrower than the limit: the fan-out
    narrow = BenchConfig(
        out=tmp_path, targets=("standalone",), workloads=("dataproc",), shards=(2,)
    )
    assert threads_needed(narrow, [Capped(settings)]) == 2


def test_a_run_uses_that_many_threads_and_records_the_limit_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a target admitting 4 at once and a plan with a 40-way fan-out
    monkeypatch.setitem(targets.TARGETS, "capped", f"{__name__}:Capped")
    Capped.seen = set()
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("capped",),
        workloads=("dataproc",),
        shards=(40,),
        repeats=1,
        modes=("natural",),
        params={"dataproc": {"split": "test"}},
        run_id="t",
    )
    # WHEN it runs
    result = run(cfg)
    # THEN at most 4 threads ever invoked, and the batch line says 4 could run at once
    assert result.failed == 0
    assert 1 <= len(Capped.seen) <= 4
    lines = [json.loads(line) for line in (cfg.out / "batches.jsonl").read_text().splitlines()]
    assert [(b["shards"], b["max_parallel"]) for b in lines] == [(40, 4)]
