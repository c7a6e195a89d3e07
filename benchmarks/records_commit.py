"""How fast the record writer commits, and what a ``kill -9`` of the writing process loses.

* **rate**: records written per second by 1, 8 and 64 threads at once (a fan-out's replies
  arrive together), with the group commit (fsync at most every 100 ms and at a batch's end),
  against fsyncing every record as the writer did before (``--sync-each`` mode of this script:
  the same writer with an fsync after every line);
* **kill -9**: a child process writes records as fast as it can and prints each one's number
  once ``write`` returned; the parent kills it with SIGKILL after a while and reads the file
  back: every acknowledged record must be there, whole, and no line may be torn.

Usage: python benchmarks/records_commit.py [--records 5000] [--kills 5]

The file system matters (fsync cost): run it where results/ lives.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import InvocationRecord, RecordWriter, iter_jsonl, read_records


def _record(i: int) -> InvocationRecord:
    outcome = Outcome(
        response={"ok": True, "result": {"n": i}, "timings": {"compute_ms": 1.0}},
        cold=False,
        duration_ms=1.0,
    )
    return InvocationRecord(
        run_id="bench",
        target="local-faas",
        workload="sleep",
        shard=i,
        shards=1,
        items=1,
        repeat=0,
        mode="natural",
        client_ms=1.0,
        t_send=time.time(),
        t_recv=time.time(),
        outcome=outcome,
        result={"n": i},
    )


class _SyncEach(RecordWriter):
    """The writer as it was: an fsync after every record (for comparison only)."""

    def write(self, record: InvocationRecord) -> None:
        super().write(record)
        self.sync()


def rate(threads: int, records: int, sync_each: bool) -> float:
    """Records per second written by ``threads`` threads sharing one writer."""
    with tempfile.TemporaryDirectory() as tmp:
        cls = _SyncEach if sync_each else RecordWriter
        writer = cls(Path(tmp) / "records.jsonl")
        per = records // threads

        def work(base: int) -> None:
            for i in range(per):
                writer.write(_record(base + i))

        pool = [threading.Thread(target=work, args=(t * per,)) for t in range(threads)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        writer.close()
        return per * threads / (time.perf_counter() - t0)


def _child(path: str) -> None:
    writer = RecordWriter(Path(path))
    for i in range(10**9):
        writer.write(_record(i))
        print(i, flush=True)


def kill_once(run_for_s: float) -> dict[str, int]:
    """Kill a writing child with SIGKILL; what it acknowledged against what the file holds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(run_for_s)
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        acknowledged = [int(x) for x in out.split()]
        bad = sum(1 for row in iter_jsonl(path) if not isinstance(row, dict))
        kept = {r["shard"] for r in read_records(path)}
        lost = sum(1 for i in acknowledged if i not in kept)
        return {"acknowledged": len(acknowledged), "kept": len(kept), "lost": lost, "torn": bad}


def main() -> None:
    """Print the rates and the kill results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    rates = {
        f"{mode}, {threads} thread(s)": round(rate(threads, args.records, mode == "sync-each"))
        for mode in ("group-commit", "sync-each")
        for threads in (1, 8, 64)
    }
    kills = [kill_once(0.5 + 0.3 * k) for k in range(args.kills)]
    print(json.dumps({"records_per_s": rates, "kill_9": kills}, indent=2))


if __name__ == "__main__":
    main()
