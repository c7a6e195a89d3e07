"""How long building a report takes, against how long the run's invocations took.

Two measurements:

* **a real run** (``RUN_DIR``, e.g. classify of 3000 images in 15 shards on ``local-faas``):
  ``python -m serverless_hpc.report RUN_DIR`` in a fresh interpreter (exactly what ``shpc
  bench`` does in its child process), median of ``--repeats`` builds, against the run's
  invocation span (first request sent to last reply, from its records);
* **scaling**: synthetic runs made from the real one's records, repeated to 1x, 10x, 100x
  and 1000x as many invocations (fresh repeats, so every summary row grows), built the same
  way; the time per record says whether the report grows linearly.

Speed is a property of the machine and of its load: run it where you want figures for, and
read the ``load average`` it prints.

Also timed: the same build with ``--no-plots`` (no SVG charts, pygal not imported), to show
what the charts cost, and one build with an empty cache directory (``$SHPC_CACHE_DIR``): the
report keeps its compiled templates there, so that is what the first report after an install
or an upgrade costs. The output says whether Python writes bytecode
(``PYTHONDONTWRITEBYTECODE`` unset): if not, every build compiles the project's own modules
from source too.

Usage: python benchmarks/report_speed.py RUN_DIR [--repeats N] [--scales 1,10,100,1000]

The builds run ``python -m serverless_hpc.report``, which imports the package from the current
directory first: run it from the checkout to time (or from elsewhere with ``PYTHONPATH``).

A 15-invocation run to time (needs a trained model in the store, e.g. from ``shpc bench
--workloads train``): ``shpc bench --targets local-faas --workloads classify --shards 15
--repeats 1 --modes natural -q --out /tmp/r15``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serverless_hpc.rundir import read_records

#: CPU seconds (user + system) of every report child so far, by the --no-plots flag.
CPU_S: dict[bool, list[float]] = {True: [], False: []}


def _build_s(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    """Wall time of one report build in a fresh interpreter (as ``shpc bench`` runs it).

    Its CPU time is kept in :data:`CPU_S`: on a shared, loaded machine the wall time mostly
    measures the neighbours; the CPU time measures the report.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "serverless_hpc.report", str(run_dir), *extra],
        check=True,
        capture_output=True,
        timeout=900,
        env=env,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU_S["--no-plots" in extra].append(cpu)
    return wall


def _scaled(src: Path, factor: int, dest: Path) -> int:
    """A copy of run ``src`` whose every batch is repeated ``factor`` times; its record count."""
    records = read_records(src / "records.jsonl")
    batches = [json.loads(x) for x in (src / "batches.jsonl").read_text().splitlines() if x]
    span = max(r["repeat"] for r in records) + 1
    dest.mkdir(parents=True)
    with (dest / "records.jsonl").open("w") as fh:
        for k in range(factor):
            for r in records:
                fh.write(json.dumps({**r, "repeat": r["repeat"] + k * span}) + "\n")
    with (dest / "batches.jsonl").open("w") as fh:
        for k in range(factor):
            for b in batches:
                fh.write(json.dumps({**b, "repeat": b["repeat"] + k * span}) + "\n")
    meta = json.loads((src / "run.json").read_text()) if (src / "run.json").is_file() else {}
    meta.pop("planned_invocations", None)
    (dest / "run.json").write_text(json.dumps(meta))
    return len(records) * factor


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scales", default="1,10,100,1000")
    args = parser.parse_args()
    records = read_records(args.run_dir / "records.jsonl")
    invocations_s = max(r["t_recv"] for r in records) - min(r["t_send"] for r in records)
    builds = [_build_s(args.run_dir) for _ in range(args.repeats)]
    bare = [_build_s(args.run_dir, "--no-plots") for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory(prefix="report-speed-cache-") as empty:
        cold = _build_s(args.run_dir, env={**os.environ, "SHPC_CACHE_DIR": empty})
        CPU_S[False].pop()  # not one of the builds the CPU median is about
    result: dict[str, object] = {
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python_writes_bytecode": not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "run": str(args.run_dir),
        "records": len(records),
        "invocations_s": round(invocations_s, 3),
        "report_s_median": round(statistics.median(builds), 3),
        "report_s_all": [round(b, 3) for b in builds],
        "report_faster_than_invocations": statistics.median(builds) < invocations_s,
        "report_cpu_s_median": round(statistics.median(CPU_S[False]), 3),
        "report_no_plots_s_median": round(statistics.median(bare), 3),
        "report_no_plots_cpu_s_median": round(statistics.median(CPU_S[True]), 3),
        "report_s_empty_cache": round(cold, 3),
    }
    scaling = []
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        for factor in (int(x) for x in args.scales.split(",")):
            dest = Path(tmp) / f"x{factor}"
            n = _scaled(args.run_dir, factor, dest)
            done = len(CPU_S[False])
            t = statistics.median([_build_s(dest) for _ in range(max(1, args.repeats // 2))])
            cpu = statistics.median(CPU_S[False][done:])
            size = (dest / "report.html").stat().st_size
            scaling.append(
                {
                    "records": n,
                    "report_s": round(t, 3),
                    "report_cpu_s": round(cpu, 3),
                    "ms_per_record": round(t / n * 1e3, 3),
                    "report_html_kb": size // 1024,
                }
            )
    result["scaling"] = scaling
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
