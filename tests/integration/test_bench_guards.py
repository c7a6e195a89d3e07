"""The driver's guards: a reused run directory, a failed training, Ctrl-C, a failed report.

Targets here are test doubles registered by name (``monkeypatch.setitem(TARGETS, ...)``), so
each test runs the real driver in well under a second and needs no data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from serverless_hpc import targets
from serverless_hpc.cli import main
from serverless_hpc.contract import PLATFORM_ERROR, error_response
from serverless_hpc.driver import BenchConfig, BenchError, run
from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import read_records
from serverless_hpc.targets.base import Target, TargetSettings, TargetUnavailable

REPO = Path(__file__).resolve().parents[2]


def _ok(request: dict[str, Any]) -> Outcome:
    """A success envelope with a plausible result for each workload."""
    workload = request["workload"]
    params = request["params"]
    if workload == "train":
        result: dict[str, Any] = {"version": "v-new", "test_accuracy": 0.91}
    elif workload == "classify":
        n = params["end"] - params["start"]
        result = {"n": n, "correct": n, "model_version": params.get("version", "latest")}
    else:
        result = {}
    body = {"ok": True, "workload": workload, "result": result, "timings": {"compute_ms": 1.0}}
    return Outcome(response=body, cold=False)


class OkTarget(Target):
    """Answers every request at once with a success envelope; remembers what it was sent."""

    name = "ok-double"
    sent: ClassVar[list[dict[str, Any]]] = []

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        type(self).sent.append({**request, "timeout_s": timeout_s})
        return _ok(request)


class TrainFailsTarget(OkTarget):
    """Training fails (as an out-of-memory or a crashed instance would); the rest succeeds."""

    name = "train-fails"

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        type(self).sent.append(request)
        if request["workload"] == "train":
            return Outcome(response=error_response(PLATFORM_ERROR, "instance died"), cold=True)
        return _ok(request)


class BlockingTarget(Target):
    """Shard 0 answers once shard 1 is in flight; shard 1 answers only when the target closes.

    ``close`` stands for the real targets' close, which kills busy instances so that the
    invocations in flight return promptly.
    """

    name = "blocking"
    second_started: ClassVar[threading.Event] = threading.Event()
    closed: ClassVar[threading.Event] = threading.Event()
    released_by_close: ClassVar[list[bool]] = []

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        cls = type(self)
        if request["shard"] == 0:
            if not cls.second_started.wait(5):
                return Outcome(
                    response=error_response(PLATFORM_ERROR, "shard 1 never ran"), cold=False
                )
            return _ok(request)
        cls.second_started.set()
        cls.released_by_close.append(cls.closed.wait(5))
        return Outcome(response=error_response(PLATFORM_ERROR, "instance killed"), cold=False)

    def close(self) -> None:
        type(self).closed.set()


class UnavailableTarget(Target):
    """A misconfigured target: opening it fails."""

    name = "unavailable"

    def open(self) -> None:
        raise TargetUnavailable("no endpoint configured")

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        raise AssertionError("never invoked: it did not open")


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the doubles by name and give each test fresh shared state."""
    for cls in (OkTarget, TrainFailsTarget, BlockingTarget, UnavailableTarget):
        monkeypatch.setitem(targets.TARGETS, cls.name, f"{__name__}:{cls.__name__}")
    monkeypatch.setattr(OkTarget, "sent", [])
    monkeypatch.setattr(TrainFailsTarget, "sent", [])
    monkeypatch.setattr(BlockingTarget, "second_started", threading.Event())
    monkeypatch.setattr(BlockingTarget, "closed", threading.Event())
    monkeypatch.setattr(BlockingTarget, "released_by_close", [])


def _cfg(out: Path, target: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "targets": (target,),
        "workloads": ("classify",),
        "params": {"classify": {"end": 10}},
        "shards": (1, 2),
        "repeats": 1,
        "modes": ("natural",),
        "run_id": "guards",
    }
    return BenchConfig(out=out, **{**base, **kw})


# -- 1. a reused --out -----------------------------------------------------------------


@pytest.mark.usefixtures("doubles")
def test_run_refuses_an_out_directory_holding_records_and_writes_nothing(tmp_path: Path) -> None:
    # GIVEN a directory holding a finished run's records
    out = tmp_path / "run"
    run(_cfg(out, "ok-double", run_id="first"))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # WHEN a second run is pointed at it
    with pytest.raises(BenchError) as err:
        run(_cfg(out, "ok-double", run_id="second"))
    # THEN it is refused naming the directory and what to do, and no file changed
    assert str(out) in str(err.value) and "choose another --out" in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert {r["run_id"] for r in read_records(out / "records.jsonl")} == {"first"}


@pytest.mark.usefixtures("doubles")
def test_cli_refuses_a_reused_out_before_looking_at_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an --out holding records, and an (empty) dataset directory for a local target
    out = tmp_path / "run"
    out.mkdir()
    (out / "records.jsonl").write_text('{"run_id": "earlier"}\n')
    empty = tmp_path / "no-data"
    empty.mkdir()
    # WHEN shpc bench is run into it
    code = main(
        ["bench", "--targets", "standalone", "--out", str(out), "--data-dir", str(empty), "-q"]
    )
    # THEN it is a usage error about the directory (not about the dataset), and nothing ran
    assert code == 2
    err = capsys.readouterr().err
    assert f"{out} already holds records.jsonl" in err and "choose another --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["records.jsonl"]


@pytest.mark.usefixtures("doubles")
def test_a_target_that_fails_to_open_leaves_the_out_directory_reusable(tmp_path: Path) -> None:
    # GIVEN a run that stops because a target is misconfigured
    out = tmp_path / "run"
    with pytest.raises(BenchError, match="'unavailable' is unavailable: no endpoint"):
        run(_cfg(out, "unavailable"))
    # WHEN the corrected command is run into the same directory THEN it is accepted
    assert not (out / "records.jsonl").exists()
    assert run(_cfg(out, "ok-double")).records == 3


# -- 5. an explicit timeout reaches the target; none means the workload's default -----------


@pytest.mark.usefixtures("doubles")
@pytest.mark.parametrize(("timeout_s", "expected"), [(2.5, 2.5), (None, 60.0)])
def test_the_timeout_sent_is_the_option_or_the_workload_default(
    tmp_path: Path, timeout_s: float | None, expected: float
) -> None:
    cfg = _cfg(tmp_path / "run", "ok-double", settings=TargetSettings(timeout_s=timeout_s))
    run(cfg)
    assert {r["timeout_s"] for r in OkTarget.sent} == {expected}


# -- 6. a failed training ----------------------------------------------------------------


@pytest.mark.usefixtures("doubles")
def test_failed_training_skips_that_targets_classify_instead_of_using_latest(
    tmp_path: Path,
) -> None:
    # GIVEN a target whose training fails, and a second target whose training works
    cfg = _cfg(tmp_path / "run", "train-fails", workloads=("train", "classify"))
    cfg = BenchConfig(**{**_fields(cfg), "targets": ("train-fails", "ok-double")})
    # WHEN the run trains then classifies on both, with a progress bar
    totals: list[int] = []
    done: list[int] = []
    result = run(cfg, progress=done.append, on_total=totals.append)
    # THEN the failing target was never sent a classify request (no fallback to "latest");
    # its training was resumed once after the crash (a chain's rule), then given up
    assert [r["workload"] for r in TrainFailsTarget.sent] == ["train", "train"]
    # AND the other target classified with the model it trained
    classify = [r for r in OkTarget.sent if r["workload"] == "classify"]
    assert classify and {r["params"]["version"] for r in classify} == {"v-new"}
    # AND the failed training is a failed invocation, the skip is recorded with its reason
    assert result.failed == 2
    meta = json.loads((cfg.out / "run.json").read_text())
    (skip,) = meta["skipped"]
    assert skip["target"] == "train-fails" and skip["workload"] == "classify"
    assert "produced no model version" in skip["reason"]
    assert result.skipped == meta["skipped"]
    recs = read_records(cfg.out / "records.jsonl")
    assert not [r for r in recs if r["target"] == "train-fails" and r["workload"] == "classify"]
    # AND the progress bar's total shrank by the skipped invocations, so it ends at 100%
    # (a chained training counts its epochs, the failed one too)
    assert totals[0] > totals[-1] == sum(done)


@pytest.mark.usefixtures("doubles")
def test_a_target_that_does_not_train_reads_the_model_the_training_target_wrote(
    tmp_path: Path,
) -> None:
    # GIVEN two targets, only the first of which trains (--train-on)
    cfg = _cfg(tmp_path / "run", "ok-double", workloads=("train", "classify"))
    cfg = BenchConfig(
        **{**_fields(cfg), "targets": ("ok-double", "train-fails"), "train_on": ("ok-double",)}
    )
    run(cfg)
    # THEN the second was sent no training, and classified with the version the first wrote
    assert {r["workload"] for r in TrainFailsTarget.sent} == {"classify"}
    assert {r["params"]["version"] for r in TrainFailsTarget.sent} == {"v-new"}


@pytest.mark.usefixtures("doubles")
def test_when_the_training_target_fails_the_others_skip_its_readers(tmp_path: Path) -> None:
    # GIVEN the only training target's training fails
    cfg = _cfg(tmp_path / "run", "train-fails", workloads=("train", "classify"))
    cfg = BenchConfig(
        **{**_fields(cfg), "targets": ("train-fails", "ok-double"), "train_on": ("train-fails",)}
    )
    result = run(cfg)
    # THEN the other target classifies nothing (no fallback to "latest") and says why
    assert not OkTarget.sent
    reasons = {(s["target"], s["reason"]) for s in result.skipped}
    assert any(t == "ok-double" and "training targets (--train-on)" in why for t, why in reasons)


def _fields(cfg: BenchConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in BenchConfig.__dataclass_fields__}


@pytest.mark.usefixtures("doubles")
def test_cli_exits_non_zero_and_names_the_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["bench", "--targets", "train-fails", "--workloads", "train,classify"]
    args += ["--images", "10", "--shards", "1", "--repeats", "1", "--modes", "natural"]
    code = main([*args, "--out", str(out), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped classify on train-fails" in err and "2 invocation(s) failed" in err


# -- 7. Ctrl-C ---------------------------------------------------------------------------


@pytest.mark.usefixtures("doubles")
def test_interrupt_closes_targets_first_and_records_no_cut_off_invocation(
    tmp_path: Path,
) -> None:
    # GIVEN a 2-shard batch where shard 1 is in flight until its target is closed
    cfg = _cfg(tmp_path / "run", "blocking", shards=(2,))
    calls = 0

    def progress(_: int) -> None:
        # WHEN the user presses Ctrl-C as shard 0 completes (the driver's progress callback
        # is the first place it can surface; it reaches the main thread through the future)
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, progress=progress)
    # THEN the target was closed before the driver waited for shard 1: closing released it
    # (had the driver waited instead, shard 1 would have given up on its own, False)
    assert BlockingTarget.released_by_close == [True]
    # AND only the invocation that finished before the interrupt is recorded
    records = read_records(cfg.out / "records.jsonl")
    assert [(r["shard"], r["ok"]) for r in records] == [(0, True)]
    assert calls == 1
    # AND run.json says the run was stopped, and by what
    assert json.loads((cfg.out / "run.json").read_text())["aborted"]["by"] == "KeyboardInterrupt"


# -- 8. the report in a child process ----------------------------------------------------


@pytest.mark.usefixtures("doubles")
def test_a_failing_report_keeps_the_records_and_says_how_to_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a report process that cannot import pygal (a broken install, say)
    broken = tmp_path / "broken-site" / "pygal"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('pygal is broken here')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    out = tmp_path / "run"
    # WHEN a benchmark finishes
    args = ["bench", "--targets", "ok-double", "--workloads", "classify", "--images", "10"]
    args += ["--shards", "1,2", "--repeats", "1", "--modes", "natural"]
    code = main([*args, "--out", str(out), "-q"])
    # THEN the exit is non-zero, the error names the cause and the command to rebuild
    assert code == 3
    captured = capsys.readouterr()
    assert "pygal is broken here" in captured.err
    assert f"Rebuild it with: shpc report {out}" in captured.err
    # AND every record is kept
    assert len(read_records(out / "records.jsonl")) == 1 + 2  # one batch of 1, one of 2 shards
    assert not (out / "report.html").exists()


def test_bench_builds_the_report_without_loading_pygal_in_the_driver(tmp_path: Path) -> None:
    # GIVEN a benchmark run through the CLI in a fresh interpreter
    out = tmp_path / "run"
    code = (
        "import sys\n"
        "from serverless_hpc import cli, targets\n"
        f"targets.TARGETS['ok-double'] = '{__name__}:OkTarget'\n"
        "rc = cli.main(['bench', '--targets', 'ok-double', '--workloads', 'classify', "
        f"'--images', '10', '--shards', '1,2', '--repeats', '1', '--out', {str(out)!r}, '-q'])\n"
        "print('RESULT', rc, 'pygal' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN the report was written (by the child process) and the driver never loaded pygal
    assert done.stdout.splitlines()[-1] == "RESULT 0 False", done.stderr
    assert (out / "report.html").is_file() and (out / "latency_by_fanout.svg").is_file()
