"""Helpers for the fault suite: real ``shpc`` processes, their instances, bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Generous bounds for waiting on real processes: they end the wait early when met, and a
#: loaded machine only makes the wait longer, never the test wrong.
START_DEADLINE_S = 120.0
EXIT_DEADLINE_S = 120.0


def shpc_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a real ``shpc`` child: this checkout first, a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHPC_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SHPC_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHPC_STATE_DIR"] = str(tmp_path / "state")
    env.update(extra)
    return env


def start_shpc(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -m serverless_hpc.cli ARGS`` (what the ``shpc`` script runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "serverless_hpc.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_shpc(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``shpc ARGS`` to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE_S,
        check=False,
    )


def wait_for(what: str, predicate: Callable[[], Any], deadline_s: float = START_DEADLINE_S) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(0.1)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def instances_of(driver_pid: int, workload: str | None = None) -> list[int]:
    """Pids of live function instances a driver started (by the ``--parent-pid`` it passed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if "serverless_hpc.worker" not in argv or "--parent-pid" not in argv:
            continue
        if argv[argv.index("--parent-pid") + 1] != str(driver_pid):
            continue
        if workload is not None and (
            "--workload" not in argv or argv[argv.index("--workload") + 1] != workload
        ):
            continue
        if _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def sleeping(pid: int) -> bool:
    """Whether ``pid``'s main thread is in a timed sleep (the ``sleep`` workload running,
    i.e. past its init: an instance killed in init would die of a broken pipe anyway)."""
    try:
        return "nanosleep" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def thread_count(pid: int) -> int:
    """Threads of ``pid`` (TensorFlow starts its pools at the first op: training began)."""
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def gone(pids: list[int]) -> bool:
    """Whether none of ``pids`` is still running."""
    return not any(_alive(p) for p in pids)


@pytest.fixture
def linux_proc() -> None:
    """These tests read /proc to find instances; skip where there is none."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc (Linux) to find the driver's instances")
