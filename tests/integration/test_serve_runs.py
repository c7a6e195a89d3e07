"""Runs started through the dashboard's API are real ``shpc bench`` processes.

Each test starts the real CLI as a child (standalone target, small plans on the real data);
waiting is bounded by generous deadlines on the child process, never by timing its work.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)

from fastapi.testclient import TestClient

from serverless_hpc.rundir import read_records
from serverless_hpc.serve.app import create_app
from serverless_hpc.serve.runs import RunManager

pytestmark = pytest.mark.integration

BASE = "http://127.0.0.1:8000"
#: Bound on one small run (a few seconds normally; a loaded 2-core machine is slower).
RUN_DEADLINE_S = 240.0
SMALL = {
    "targets": ["standalone"],
    "workloads": ["dataproc"],
    "params": {"dataproc": {"split": "test"}},
    "shards": [1, 2],
    "repeats": 1,
    "modes": ["natural"],
}
#: A run that goes on until cancelled: 1 s sleeps, many repeats.
LONG = {
    "targets": ["standalone"],
    "workloads": ["sleep"],
    "params": {"sleep": {"seconds": 0.5}},
    "shards": [1],
    "repeats": 200,
    "modes": ["natural"],
}


@pytest.fixture
def manager(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunManager]:
    monkeypatch.setenv("FASHION_MNIST_DIR", str(data_dir))  # the child reads it, as from a shell
    runs = RunManager(tmp_path / "results")
    yield runs
    for run_id in runs.active():  # never leave a child behind
        runs.cancel(run_id)
        runs.wait(run_id, 60)


def _client(runs: RunManager) -> TestClient:
    return TestClient(create_app(runs), base_url=BASE)


def _start(client: TestClient, body: dict[str, Any]) -> str:
    got = client.post("/api/runs", json=body)
    assert got.status_code == 201, got.text
    return str(got.json()["id"])


def _until(predicate: Any, what: str, deadline_s: float = RUN_DEADLINE_S) -> None:
    """Wait (bounded) for a real child process to get somewhere."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"no {what} within {deadline_s:g} s")


def test_a_run_from_the_api_is_the_terminals_run(manager: RunManager) -> None:
    client = _client(manager)
    run_id = _start(client, SMALL)
    assert manager.wait(run_id, RUN_DEADLINE_S)
    out = manager.results / run_id
    detail = client.get(f"/api/runs/{run_id}").json()
    # THEN the same files as `shpc bench --out`, the same plan, and every invocation recorded
    assert detail["status"] == "finished", (out / "serve.log").read_text()
    assert detail["exit_code"] == 0
    assert detail["planned"] == detail["done"] == 3 and detail["failed"] == 0
    assert detail["report"] is True
    for name in ("records.jsonl", "batches.jsonl", "summary.csv", "summary.md", "report.html"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "run.json").read_text())
    assert meta["run_id"] == run_id and meta["config"]["params"]["dataproc"]["split"] == "test"
    assert [r["shards"] for r in read_records(out / "records.jsonl")] == [1, 2, 2]
    assert detail["command"] == (
        "shpc bench --targets standalone --workloads dataproc --shards 1,2 --repeats 1 "
        "--modes natural --param 'dataproc.split=\"test\"'"
    )
    # the event stream replays it and ends
    with client.stream("GET", f"/api/runs/{run_id}/events") as events:
        text = "".join(events.iter_text())
    assert '"done":3' in text and 'event: end\ndata: {"status":"finished"}' in text
    # and the report is served
    assert "serverless-hpc" in client.get(f"/runs/{run_id}/report").text


def test_one_run_at_a_time_then_cancel_keeps_the_records(manager: RunManager) -> None:
    client = _client(manager)
    first = _start(client, LONG)
    records = manager.results / first / "records.jsonl"
    _until(lambda: records.exists() and records.stat().st_size > 0, "first record")
    # WHEN another run is asked for THEN 409 names the one going
    got = client.post("/api/runs", json=SMALL)
    assert got.status_code == 409
    assert got.json()["run_id"] == first and first in got.json()["error"]
    # WHEN cancelled THEN the CLI aborts cleanly (SIGINT), records kept, status cancelled
    got = client.post(f"/api/runs/{first}/cancel")
    assert got.status_code == 202
    assert manager.wait(first, RUN_DEADLINE_S)
    detail = client.get(f"/api/runs/{first}").json()
    assert detail["status"] == "cancelled"
    assert detail["exit_code"] == 130
    assert detail["aborted"]["by"] == "KeyboardInterrupt"
    assert detail["done"] >= 1 and detail["done"] == len(read_records(records))
    assert client.post(f"/api/runs/{first}/cancel").status_code == 409
    # and the next run may start
    second = _start(client, SMALL)
    assert manager.wait(second, RUN_DEADLINE_S)


def test_a_restarted_server_adopts_live_runs_and_shows_dead_ones_interrupted(
    manager: RunManager,
) -> None:
    client = _client(manager)
    run_id = _start(client, LONG)
    records = manager.results / run_id / "records.jsonl"
    _until(lambda: records.exists() and records.stat().st_size > 0, "first record")
    # GIVEN a second server over the same results directory (a restart)
    again = RunManager(manager.results)
    assert again.active() == [run_id]
    assert again.status(run_id)["status"] == "running"
    assert _client(again).post("/api/runs", json=SMALL).status_code == 409
    # WHEN the run's processes die without a word (SIGKILL to its group)
    pid = json.loads((manager.results / run_id / "serve.json").read_text())["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    assert manager.wait(run_id, RUN_DEADLINE_S)
    # THEN a third server shows it interrupted, its records intact
    later = RunManager(manager.results)
    detail = later.detail(run_id)
    assert detail["status"] == "interrupted"
    assert detail["done"] == len(read_records(records)) >= 1
    assert later.active() == []


def test_a_run_the_cli_refuses_is_failed_with_the_clis_message(manager: RunManager) -> None:
    # GIVEN classify without train, and an empty model store (the tests' own cache)
    client = _client(manager)
    run_id = _start(client, {**SMALL, "workloads": ["classify"], "params": {}, "images": 20})
    assert manager.wait(run_id, RUN_DEADLINE_S)
    detail = client.get(f"/api/runs/{run_id}").json()
    # THEN failed, saying why in the CLI's words, no traceback, nothing recorded
    assert detail["status"] == "failed"
    assert detail["exit_code"] == 2
    assert len(detail["errors"]) == 1
    assert detail["errors"][0].startswith("error: classify needs a trained model")
    assert "Traceback" not in (manager.results / run_id / "serve.log").read_text()
    assert not (manager.results / run_id / "records.jsonl").exists()
    with client.stream("GET", f"/api/runs/{run_id}/events") as events:
        assert 'event: end\ndata: {"status":"failed"}' in "".join(events.iter_text())
