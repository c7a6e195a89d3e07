"""The benchmark driver end to end on the local targets, and the CLI's failure modes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serverless_hpc import targets
from serverless_hpc.cli import main
from serverless_hpc.driver import BenchConfig, BenchError, context, count_invocations, run
from serverless_hpc.invocation import Outcome
from serverless_hpc.report import build_report
from serverless_hpc.rundir import RECORD_SCHEMA, read_records
from serverless_hpc.targets.base import Target, TargetSettings


@pytest.mark.integration
def test_dataproc_bench_on_both_local_targets(data_dir: Path, tmp_path: Path) -> None:
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas", "standalone"),
        workloads=("dataproc",),
        shards=(1, 4),
        repeats=2,
        modes=("natural", "cold"),
        cold_repeats=1,
        params={"dataproc": {"split": "test"}},
        settings=TargetSettings(data_dir=data_dir, log_dir=tmp_path / "logs"),
        run_id="test-run",
    )
    expected = count_invocations(cfg, lambda name: name == "local-faas")
    result = run(cfg)
    records = read_records(cfg.out / "records.jsonl")
    # one record per invocation: natural 2x(1+4) on both, cold 1x(1+4) on local-faas only
    assert result.records == len(records) == expected == 25
    assert result.failed == 0
    # every record has exactly the schema's fields; the environment is run.json's, once
    assert all(set(r) == set(RECORD_SCHEMA) for r in records)
    meta = json.loads((cfg.out / "run.json").read_text())
    assert meta["environment"]["cpu_count"] and set(meta["targets"]) == set(cfg.targets)
    faas_cold = [r for r in records if r["target"] == "local-faas" and r["mode"] == "cold"]
    assert len(faas_cold) == 5 and all(r["cold"] and r["init_ms"] > 0 for r in faas_cold)
    digests = {b["reduced_sha256"] for b in result.batches}
    assert len(digests) == 1  # every fan-out on every target reduced to the same result
    written = build_report(cfg.out)
    assert "FAIL" not in written["report.html"].read_text()


def test_unknown_target_is_a_clear_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["bench", "--targets", "local-faas,mainframe", "--out", str(tmp_path), "-q"])
    assert code == 2
    assert "unknown target(s) mainframe" in capsys.readouterr().err


def test_too_many_shards_is_a_clear_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        [
            "bench",
            "--images",
            "10",
            "--shards",
            "20",
            "--workloads",
            "classify",
            "--targets",
            "standalone",
            "--out",
            str(tmp_path),
            "-q",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    # the option is reported; the (empty) data directory was never looked at
    assert "--shards: 20 shards exceed the 10 items of classify" in capsys.readouterr().err


def test_bench_config_validation_names_the_option(tmp_path: Path) -> None:
    ten = {"classify": {"end": 10}}
    with pytest.raises(BenchError, match="--shards: 20 shards exceed the 10 items of classify"):
        BenchConfig(out=tmp_path, params=ten, shards=(1, 20))
    with pytest.raises(BenchError, match="--workloads"):
        BenchConfig(out=tmp_path, workloads=("mine-bitcoin",))
    with pytest.raises(BenchError, match=r"--param classify.end: 0 is outside 1\.\.10000"):
        BenchConfig(out=tmp_path, params={"classify": {"end": 0}})
    with pytest.raises(BenchError, match="--shards: 600 shards exceed the 500 items"):
        BenchConfig(
            out=tmp_path,
            workloads=("classify",),
            params={"classify": {"end": 500}},
            shards=(600,),
        )
    with pytest.raises(BenchError, match="--shards must be at most 1000"):
        BenchConfig(out=tmp_path, workloads=("dataproc",), shards=(1001,))
    with pytest.raises(BenchError, match=r"--param: workload.* classify not in --workloads"):
        BenchConfig(out=tmp_path, workloads=("dataproc",), params=ten)
    # dataproc's input is its split, not classify's images: 20 shards of 60000 are fine
    assert BenchConfig(out=tmp_path, workloads=("dataproc",), shards=(20,)).shards == (20,)


def test_classify_without_a_model_fails_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = BenchConfig(
        out=tmp_path / "r",
        targets=("standalone",),
        workloads=("classify",),
        settings=TargetSettings(store_uri=str(tmp_path / "empty-store")),
    )
    with pytest.raises(BenchError, match="Add 'train' to --workloads"):
        run(cfg)
    assert not (tmp_path / "r").exists()


def test_driver_help_loads_no_heavy_library() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from serverless_hpc import cli, driver, report\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['bench', '--help'])\n"
        "heavy = ('tensorflow', 'keras', 'ai_edge_litert', 'boto3', 'botocore', 'pygal', 'requests')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


class RaisingBatchTarget(Target):
    """A test double of a batch-native target whose whole batch fails (e.g. an SSM outage)."""

    name = "raising-batch"
    batch_native = True

    def invoke(self, request: dict, *, timeout_s: float, force_cold: bool = False) -> Outcome:
        raise AssertionError("the driver must call invoke_batch on a batch-native target")

    def invoke_batch(self, requests, *, timeout_s: float, force_cold: bool = False):  # type: ignore[no-untyped-def]
        raise ConnectionError("SSM endpoint unreachable")


def test_a_batch_native_target_that_raises_records_failures_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(targets.TARGETS, "raising-batch", f"{__name__}:RaisingBatchTarget")
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("raising-batch",),
        workloads=("dataproc",),
        shards=(1, 3),
        repeats=1,
        params={"dataproc": {"split": "test"}},
        run_id="t",
    )
    result = run(cfg)
    records = read_records(cfg.out / "records.jsonl")
    assert result.records == len(records) == 4 and result.failed == 4
    assert all("ConnectionError: SSM endpoint unreachable" in r["error"] for r in records)


class ThreadClock:
    """A fake nanosecond clock per thread: time passes only when a test says so.

    Per thread, because a batch's invocations run in parallel and each measures its own.
    """

    def __init__(self) -> None:
        self._ns: dict[int, int] = {}

    def __call__(self) -> int:
        return self._ns.get(threading.get_ident(), 0)

    def advance_ms(self, ms: float) -> None:
        me = threading.get_ident()
        self._ns[me] = self._ns.get(me, 0) + round(ms * 1e6)


class SlowToPrepareTarget(Target):
    """A test double: preparing a batch takes 400 ms; each invocation 5 ms (on a fake clock)."""

    name = "slow-prepare"
    supports_forced_cold = True

    def __init__(self, settings: TargetSettings, clock: ThreadClock) -> None:
        super().__init__(settings)
        self.events: list[str] = []
        self.clock = clock

    def prepare_batch(self, workload: str, *, force_cold: bool, timeout_s: float) -> None:
        self.events.append(f"prepare {workload} cold={force_cold}")
        self.clock.advance_ms(400.0)  # platform work the driver must not time

    def invoke(self, request: dict, *, timeout_s: float, force_cold: bool = False) -> Outcome:
        self.events.append("invoke")
        self.clock.advance_ms(5.0)
        envelope = {
            "ok": True,
            "workload": request["workload"],
            "result": {},
            "cold_start": force_cold,
            "timings": {"load_ms": 0.0, "compute_ms": 0.0},
            "runtime": {},
        }
        return Outcome(response=envelope, cold=force_cold)


def test_batch_preparation_happens_before_and_outside_the_timed_invocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[SlowToPrepareTarget] = []
    clock = ThreadClock()
    monkeypatch.setattr(context, "perf_ns", clock)

    def create(name: str, settings: TargetSettings) -> Target:
        made.append(SlowToPrepareTarget(settings, clock))
        return made[-1]

    monkeypatch.setitem(targets.TARGETS, "slow-prepare", "unused:Unused")
    monkeypatch.setattr(targets, "create", create)
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("slow-prepare",),
        workloads=("dataproc",),
        shards=(2,),
        repeats=1,
        modes=("natural", "cold"),
        cold_repeats=1,
        params={"dataproc": {"split": "test"}},
        run_id="t",
    )
    run(cfg)
    records = read_records(cfg.out / "records.jsonl")
    assert made[0].events == [
        "prepare dataproc cold=False",
        "invoke",
        "invoke",
        "prepare dataproc cold=True",
        "invoke",
        "invoke",
    ]
    # client_ms holds each invocation's 5 ms, none of the 400 ms of preparation
    assert len(records) == 4 and all(r["client_ms"] == 5.0 for r in records)
