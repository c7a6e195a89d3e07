"""The record writer's guarantee under ``kill -9``: every record whose ``write`` returned is in
the file, whole; and the periodic fsync happens without a batch's end or a close."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import InvocationRecord, RecordWriter, iter_jsonl, read_records

WRITER = """
import sys, time
from pathlib import Path
from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import InvocationRecord, RecordWriter
w = RecordWriter(Path(sys.argv[1]))
for i in range(10**9):
    o = Outcome(response={"ok": True, "result": {"pad": "x" * 3000}}, cold=False)
    w.write(InvocationRecord(run_id="r", target="t", workload="sleep", shard=i, shards=1,
                             items=1, repeat=0, mode="natural", client_ms=1.0, t_send=1.0,
                             t_recv=1.0, outcome=o, result={"pad": "x" * 3000}))
    print(i, flush=True)
"""


def test_kill_9_loses_no_acknowledged_record_and_tears_no_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    for attempt in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        # WHEN it is killed while writing (after some records: wait for the first few)
        assert child.stdout is not None
        for _ in range(50 * (attempt + 1)):
            child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        acknowledged = {int(x) for x in out.split()}
        # THEN every acknowledged record is there and no line is torn
        rows = list(iter_jsonl(path))
        assert all(isinstance(r, dict) for r in rows), "a torn line"
        kept = {r["shard"] for r in read_records(path)}
        assert acknowledged <= kept
        path.unlink()


def test_written_records_are_synced_within_the_interval(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path / "records.jsonl", sync_interval_s=0.05)
    try:
        outcome = Outcome(response={"ok": True, "result": {}}, cold=False)
        writer.write(
            InvocationRecord(
                run_id="r",
                target="t",
                workload="sleep",
                shard=0,
                shards=1,
                items=1,
                repeat=0,
                mode="natural",
                client_ms=1.0,
                t_send=1.0,
                t_recv=1.0,
                outcome=outcome,
            )
        )
        deadline = time.monotonic() + 10
        while writer.syncs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # the sync thread committed it, with no batch end and no close
        assert writer.syncs == 1
    finally:
        writer.close()
    assert len(read_records(tmp_path / "records.jsonl")) == 1
