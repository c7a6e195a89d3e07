"""The report and ``shpc compare`` at 100k and 1M records: wall time, CPU time, peak memory.

A run directory (``RUN_DIR``, e.g. one made by ``shpc bench``) is scaled to each size by
repeating its batches (fresh repeat numbers, so every summary row grows, as a long run's
would); the report is built in a fresh interpreter, exactly as ``shpc bench`` does in its
child process, and ``shpc compare`` compares two such runs. Peak memory is the child's own
high-water mark (``VmHWM`` of ``/proc/self/status`` read as it exits), not ``ru_maxrss``,
which keeps a forking parent's peak.

Usage: python benchmarks/report_scale.py RUN_DIR [--sizes 100000,1000000] [--no-compare]

Say the machine's load when quoting the times (printed); peak memory does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report_speed import _scaled

from serverless_hpc.rundir import read_records

#: Runs a module as ``python -m`` would, then prints the process's peak RSS (MB) last.
_WRAP = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("PEAK_MB", int(hwm) / 1024, file=sys.stderr)
sys.exit(code)
"""


def _measured(*argv: str) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of ``python -m ARGV`` in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _WRAP, *argv],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # compare exits 1 on a regression (none asked here)
        raise RuntimeError(f"{argv} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = [float(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("PEAK_MB")]
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "peak_mb": round(peak[-1]),
    }


def scaled(src: Path, records: int, dest: Path) -> int:
    """A copy of run ``src`` repeated until it holds about ``records`` records; the count
    (``report_speed``'s scaling, to a record count rather than a factor)."""
    factor = max(1, round(records / len(read_records(src / "records.jsonl"))))
    return _scaled(src, factor, dest)


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--no-compare", action="store_true")
    args = parser.parse_args()
    out: dict[str, object] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    sizes = []
    with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
        for size in (int(x) for x in args.sizes.split(",")):
            base = Path(tmp) / f"base-{size}"
            n = scaled(args.run_dir, size, base)
            row: dict[str, object] = {
                "records": n,
                "records_mb": round((base / "records.jsonl").stat().st_size / 2**20),
            }
            row["report"] = _measured("serverless_hpc.report", str(base))
            if not args.no_compare:
                new = Path(tmp) / f"new-{size}"
                scaled(args.run_dir, size, new)
                row["compare"] = _measured(
                    "serverless_hpc.cli", "compare", str(base), str(new), "--json"
                )
                for d in (base, new):
                    for f in d.iterdir():
                        f.unlink()
            sizes.append(row)
            print(json.dumps(row), file=sys.stderr)
    out["sizes"] = sizes
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
