"""One run per directory: claimed atomically, the holder named, a user's files left alone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from serverless_hpc.cli import main
from serverless_hpc.rundir import Holder, RunDirError, RunLock, read_records
from tests.faults.conftest import EXIT_DEADLINE_S, shpc_env, start_shpc

SLEEP_RUN = ["bench", "--targets", "local-faas", "--workloads", "sleep", "--shards", "1"]
SLEEP_RUN += ["--repeats", "1", "--modes", "natural", "-q"]


@pytest.mark.slow
def test_two_real_runs_racing_for_one_directory(tmp_path: Path) -> None:
    # GIVEN two real shpc bench processes started together on the same --out
    out = tmp_path / "run"
    env = shpc_env(tmp_path)
    args = [*SLEEP_RUN, "--param", "sleep.seconds=5", "--out", str(out)]
    procs = [start_shpc(args, env, tmp_path) for _ in range(2)]
    results = [(p.pid, *p.communicate(timeout=EXIT_DEADLINE_S), p.returncode) for p in procs]
    # THEN exactly one ran; the other was refused with exit 2, naming the winner
    codes = sorted(r[3] for r in results)
    assert codes == [0, 2], results
    winner = next(r for r in results if r[3] == 0)
    loser = next(r for r in results if r[3] == 2)
    assert f"is in use by another run (pid {winner[0]} on host" in loser[2]
    assert "Traceback" not in loser[2]
    # AND the directory holds one run's records only, not two interleaved
    records = read_records(out / "records.jsonl")
    assert len(records) == 1 and records[0]["ok"]
    assert json.loads((out / "run.json").read_text())["finished"]


def test_a_held_directory_is_refused_naming_its_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunLock.claim(out, run_id="first"), pytest.raises(RunDirError) as err:
        RunLock.claim(out, run_id="second")
    message = str(err.value)
    assert f"pid {os.getpid()} on host" in message and "(run first)" in message
    # once released it can be claimed again, and nothing calls the released claim stale
    with RunLock.claim(out) as again:
        assert again.stale is None


def test_a_stale_lock_from_a_dead_process_is_reported_and_does_not_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a lock file naming a process that died without releasing it (and no records)
    out = tmp_path / "run"
    out.mkdir()
    holder = {"pid": 999_999_999, "host": "h", "started": 1.0, "run_id": "killed"}
    (out / ".lock").write_text(json.dumps(holder))
    # WHEN a (short, real) run is started there
    code = main([*SLEEP_RUN, "--param", "sleep.seconds=0", "--out", str(out)])
    # THEN the stale claim is reported by name, and the run goes ahead
    err = capsys.readouterr().err
    assert "pid 999999999 on host h" in err and "ended without releasing it" in err
    assert code == 0, err
    assert len(read_records(out / "records.jsonl")) == 1
    assert Holder.parse((out / ".lock").read_text()) is None  # released at the end


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "..", ".hidden", "x" * 200, "a b"])
def test_a_run_id_that_is_not_one_path_segment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    code = main(["bench", "--targets", "standalone", "--run-id", run_id, "-q"])
    assert code == 2
    assert "--run-id" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    assert not any((tmp_path / "results").iterdir())


def test_a_users_own_summary_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.md").write_text("my notes")
    code = main(["bench", "--targets", "standalone", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "summary.md" in err and "overwrite" in err
    assert (out / "summary.md").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["summary.md"]


def test_out_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    code = main(["bench", "--targets", "standalone", "--out", str(target), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a directory" in err and "Traceback" not in err
    assert target.read_text() == "x"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Path:
    """A directory on a read-only file system (a tmpfs mounted ro), or a 0555 one."""
    path = tmp_path / "ro"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if mounted.returncode != 0:
        path.chmod(0o555)
        if os.access(path, os.W_OK):
            pytest.skip("cannot make a read-only directory here (root without mount)")
    yield path
    if mounted.returncode == 0:
        subprocess.run(["umount", str(path)], check=False, timeout=30)
    else:
        path.chmod(0o755)


def test_out_on_a_read_only_file_system_is_a_usage_error(
    read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = read_only_dir / "run"
    code = main(["bench", "--targets", "standalone", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and str(out) in err and "Traceback" not in err
    assert "Read-only file system" in err or "Permission denied" in err
