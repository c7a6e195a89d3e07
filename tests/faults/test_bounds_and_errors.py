"""Bad input and faults end in one ``error:`` line and the README's exit code, never a traceback.

Each test injects one fault (an option out of bounds, a file where a directory belongs, a
disk that fills up, a corrupt model store...) and checks the outcome: the exit code, the
message naming what is wrong, nothing written where it should not be, records intact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from serverless_hpc import driver, targets
from serverless_hpc.cli import main
from serverless_hpc.contract import ContractError
from serverless_hpc.driver import BenchConfig, count_invocations
from serverless_hpc.rundir import read_records
from serverless_hpc.store import LocalStore, check_bundle, save_bundle
from serverless_hpc.targets.base import Outcome, Target, TargetSettings, TargetUnavailable
from tests.faults.conftest import REPO

BENCH = ["bench", "--targets", "standalone", "-q"]


class OkDouble(Target):
    """A test double: answers every request at once with a success envelope."""

    name = "ok-double"
    opened: ClassVar[int] = 0

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        body = {"ok": True, "workload": request["workload"], "result": {}, "timings": {}}
        return Outcome(response=body, cold=False)


class BrokenDouble(OkDouble):
    """A test double with a bug: its open raises something no handler expects."""

    name = "broken-double"

    def open(self) -> None:
        raise RuntimeError("a bug in the target")


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the doubles by name, as a real target is."""
    for cls in (OkDouble, BrokenDouble):
        monkeypatch.setitem(targets.TARGETS, cls.name, f"{__name__}:{cls.__name__}")


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err, err


# -- bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--keep-alive", "inf", "--keep-alive must be >= 0 seconds and at most 86400"),
        ("--keep-alive", "nan", "--keep-alive must be >= 0 seconds and at most 86400"),
        ("--timeout", "inf", "--timeout must be > 0 seconds and at most 86400"),
        ("--timeout", "3e6", "--timeout must be > 0 seconds and at most 86400"),
        ("--memory-mb", "20000", "memory_mb must be >= 128 and at most 10240"),
        ("--concurrency", "100000", "--concurrency must be >= 1 and at most 1000"),
        ("--repeats", "1000000000", "--repeats must be >= 1 and at most 10000"),
        ("--cold-repeats", "5000", "--cold-repeats must be >= 1 and at most 1000"),
        ("--train-repeats", "1000", "--train-repeats must be >= 1 and at most 100"),
        ("--shards", "1,1001", "--shards must be at most 1000"),
    ],
)
def test_an_option_out_of_bounds_is_refused_naming_the_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    out = tmp_path / "run"
    code = main([*BENCH, "--out", str(out), option, value])
    err = capsys.readouterr().err
    assert code == 2 and named in err
    _no_traceback(err)
    assert not out.exists()  # nothing left behind to block the next run


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity"])
def test_a_non_finite_param_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    args = [*BENCH, "--workloads", "sleep", "--param", f"sleep.seconds={value}"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert "not a finite number" in capsys.readouterr().err


def test_a_huge_plan_asks_for_yes_and_is_counted_arithmetically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the largest plan the bounds allow: counting it must not enumerate it
    cfg = BenchConfig(
        out=tmp_path, workloads=("classify",), shards=(1000,), repeats=10_000, cold_repeats=1000
    )
    assert count_invocations(cfg, lambda _t: True) == 2 * 1000 * (10_000 + 1000)
    # WHEN a plan over the confirmation size is started without --yes THEN exit 2, saying so
    # (dataproc at shards 1,5,10,15: 31 invocations per repeat; 3000 natural + 2 cold repeats)
    out = tmp_path / "run"
    code = main([*BENCH, "--workloads", "dataproc", "--repeats", "3000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "add --yes" in err and f"{31 * 3002:,} invocations" in err
    assert not out.exists()


def test_lambda_refuses_a_timeout_over_its_900_s_maximum() -> None:
    with pytest.raises(TargetUnavailable, match="over Lambda's maximum function timeout of 900"):
        targets.create("lambda", TargetSettings(timeout_s=901))


def test_an_unknown_option_of_local_faas_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "--targets", "local-faas", "--target-opt", "local-faas.foo=bar", "-q"]
    code = main([*args, "--workloads", "sleep", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    # (refused by the registry's check or by the target itself, whichever looks first)
    assert code == 2 and "--target-opt local-faas.foo" in err and "(known: " in err


# -- error paths --------------------------------------------------------------------------


def test_an_unreadable_dataset_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a dataset directory where one file cannot be read (a directory in its place:
    # unreadable even to root, unlike a chmod 000 file)
    data = tmp_path / "data"
    data.mkdir()
    for name in (
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (data / name).write_bytes(b"x")
    (data / "train-images-idx3-ubyte.gz").mkdir()
    out = tmp_path / "run"
    code = main([*BENCH, "--workloads", "dataproc", "--data-dir", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "train-images-idx3-ubyte.gz" in err
    _no_traceback(err)
    assert not out.exists()


def test_a_store_that_is_a_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    store.write_text("not a directory")
    monkeypatch.setenv("SHPC_STORE", str(store))
    out = tmp_path / "run"
    code = main(
        ["bench", "--targets", "local-faas", "--workloads", "sleep", "-q", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"model store {store} is a file, not a directory" in err
    _no_traceback(err)
    assert not out.exists()


@pytest.mark.usefixtures("doubles")
def test_a_full_disk_while_writing_records_stops_the_run_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a records file on a device that is always full (writes fail with ENOSPC)
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    out = tmp_path / "run"
    out.mkdir()
    (out / "records.jsonl").symlink_to("/dev/full")
    # WHEN a run writes its first record
    args = ["bench", "--targets", "ok-double", "--workloads", "dataproc", "-q", "--out", str(out)]
    code = main([*args, "--modes", "natural", "--shards", "1", "--repeats", "2"])
    # THEN it stops with exit 2 and a message naming the cause; run.json says aborted
    err = capsys.readouterr().err
    assert code == 2 and "could not be written (No space left on device)" in err
    _no_traceback(err)
    meta = json.loads((out / "run.json").read_text())
    assert meta["aborted"]["by"] == "OSError" and "finished" not in meta


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        ("[1,2,3]", "the request must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nests deeper than 32 levels"),
        ('{"workload": "sleep", "params": ' + "[" * 40 + "]" * 40 + "}", "nests deeper"),
        ("{not json", "the request is not JSON"),
    ],
    ids=["list", "100000-deep", "deep-params", "not-json"],
)
def test_invoke_with_a_bad_request_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], request_text: str, message: str
) -> None:
    code = main(["invoke", "local-faas", request_text])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    _no_traceback(err)


@pytest.mark.usefixtures("doubles")
def test_an_internal_error_is_one_line_and_a_traceback_only_with_v(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "--targets", "broken-double", "--workloads", "dataproc", "-q"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 4
    err = capsys.readouterr().err
    assert "error: internal error: RuntimeError: a bug in the target" in err
    assert "run with -v" in err
    _no_traceback(err)
    # WITH -v the traceback is shown
    assert main(["-v", *args, "--out", str(tmp_path / "b")]) == 4
    assert "Traceback" in capsys.readouterr().err


def test_no_traceback_reaches_a_real_terminal(tmp_path: Path) -> None:
    # GIVEN the real console script's module, run as a user would, on a file as --out
    (tmp_path / "afile").write_text("x")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", *BENCH, "--out", str(tmp_path / "afile")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    _no_traceback(done.stderr)


# -- the model store ------------------------------------------------------------------------


def _store_with_model(tmp_path: Path) -> tuple[LocalStore, str]:
    store = LocalStore(tmp_path / "store")
    version = save_bundle(store, "fashion-cnn", {"model.tflite": b"x", "model.keras": b"y"}, {})
    return store, version


def _classify_preflight(tmp_path: Path, store: LocalStore, capsys: Any) -> tuple[int, str]:
    out = tmp_path / "run"
    args = ["bench", "--targets", "local-faas", "--workloads", "classify", "-q"]
    code = main([*args, "--store", store.uri, "--out", str(out)])
    return code, capsys.readouterr().err


def test_latest_naming_a_missing_version_fails_the_preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = _store_with_model(tmp_path)
    store.put_bytes("models/fashion-cnn/LATEST", b"20990101T000000Z-gone00")
    code, err = _classify_preflight(tmp_path, store, capsys)
    assert code == 2 and "20990101T000000Z-gone00" in err and "missing" in err
    assert not (tmp_path / "run").exists()


def test_a_corrupt_metadata_json_is_noticed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, version = _store_with_model(tmp_path)
    store.put_bytes(f"models/fashion-cnn/{version}/metadata.json", b"{torn")
    with pytest.raises(ContractError, match=r"metadata\.json is corrupt"):
        check_bundle(store, "fashion-cnn", version)
    code, err = _classify_preflight(tmp_path, store, capsys)
    assert code == 2 and "metadata.json is corrupt" in err


def test_a_bundle_missing_a_listed_file_is_noticed(tmp_path: Path) -> None:
    store, version = _store_with_model(tmp_path)
    (Path(store.uri) / f"models/fashion-cnn/{version}/model.tflite").unlink()
    with pytest.raises(ContractError, match=r"lacks model\.tflite"):
        check_bundle(store, "fashion-cnn", version)


def test_a_model_file_that_is_not_a_flatbuffer_names_the_file(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    from serverless_hpc.workloads.classify import function as classify

    store, version = _store_with_model(tmp_path)  # model.tflite holds b"x"
    with pytest.raises(ContractError, match=rf"fashion-cnn/{version}/model.tflite is not a LiteRT"):
        classify._interpreter(store.uri, "fashion-cnn", version, 10, 1)


def test_an_empty_directory_left_by_an_aborted_run_is_reusable(tmp_path: Path) -> None:
    # GIVEN what a run stopped before its first record leaves: run.json, empty records
    out = tmp_path / "run"
    out.mkdir()
    (out / "records.jsonl").write_text("")
    (out / "run.json").write_text('{"aborted": {"by": "SIGTERM"}}')
    (out / ".lock").write_text("")
    # THEN the directory can be used again
    driver.check_out_dir(out)
    assert read_records(out / "records.jsonl") == []
