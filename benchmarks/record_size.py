"""What one invocation record costs: bytes on disk and bytes in memory once parsed.

Reads ``records.jsonl`` of each run directory given and prints, per run and per workload,
the records, the mean bytes per line on disk, and the mean memory one parsed record holds
(``tracemalloc``: every allocation ``json.loads`` makes for the line, measured line by line,
so the figure does not depend on what else the process holds). Give it a run made by an
earlier version and one made now with the same command to compare the record shapes.

Usage: python benchmarks/record_size.py RUN_DIR [RUN_DIR ...] [--json]

The two runs in the README were made with, at each commit:
``shpc bench --targets local-faas,standalone --workloads dataproc,sleep --shards 1,4
--repeats 2 --modes natural -q --param dataproc.split=test --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any


def measure(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per workload: records, mean bytes per line on disk, mean bytes in memory parsed."""
    disk: dict[str, list[int]] = defaultdict(list)
    memory: dict[str, list[int]] = defaultdict(list)
    lines = (run_dir / "records.jsonl").read_bytes().splitlines()
    tracemalloc.start()
    try:
        for line in lines:
            if not line.strip():
                continue
            before = tracemalloc.get_traced_memory()[0]
            record = json.loads(line)
            held = tracemalloc.get_traced_memory()[0] - before
            workload = str(record.get("workload"))
            disk[workload].append(len(line) + 1)
            memory[workload].append(held)
            del record
    finally:
        tracemalloc.stop()
    out = {}
    for workload in sorted(disk):
        out[workload] = {
            "records": len(disk[workload]),
            "disk_bytes": statistics.fmean(disk[workload]),
            "memory_bytes": statistics.fmean(memory[workload]),
        }
    everything = [b for v in disk.values() for b in v]
    held_all = [b for v in memory.values() for b in v]
    out["all"] = {
        "records": len(everything),
        "disk_bytes": statistics.fmean(everything),
        "memory_bytes": statistics.fmean(held_all),
    }
    return out


def main() -> None:
    """Print the table (or JSON) for each run directory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {str(run): measure(run) for run in args.runs}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| run | workload | records | bytes on disk | bytes in memory |")
    print("|---|---|---:|---:|---:|")
    for run, rows in results.items():
        for workload, row in rows.items():
            print(
                f"| {Path(run).name} | {workload} | {row['records']} | "
                f"{row['disk_bytes']:,.0f} | {row['memory_bytes']:,.0f} |"
            )


if __name__ == "__main__":
    main()
