"""Is the local emulation check fair under load? ``classify`` (3000 images, one shard) on
``local-faas`` and ``standalone`` on this machine, quiet and with CPU-bound processes beside
it; prints each target's median warm latency and their ratio at each load.

    .venv/bin/python benchmarks/emulation_check.py [--hogs 2] [--repeats 10]

With both sides confined to their vCPUs at the same CPU weight per vCPU, the ratio should
not move with the load. A small model is trained first into a temporary store (1 epoch on
6,000 images), so the run leaves nothing behind. Needs the train extra and the
Fashion-MNIST files ($FASHION_MNIST_DIR). The hogs are killed at the end, also on error.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HOG = "while True: pass"
#: Bound on one bench run (a few seconds normally; the machine may be loaded).
RUN_TIMEOUT_S = 600


def shpc(*args: str, timeout: float = RUN_TIMEOUT_S) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"shpc {args[0]} failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout


def medians(out: Path) -> dict[str, float]:
    """Warm median latency per target from the run's summary.csv."""
    with (out / "summary.csv").open(encoding="utf-8") as f:
        return {
            row["target"]: float(row["warm_median_ms"])
            for row in csv.DictReader(f)
            if row["workload"] == "classify" and row["warm_median_ms"]
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"file://{tmp}/store"
        request = {"workload": "train", "params": {"epochs": 1, "train_limit": 6000}}
        shpc("invoke", "local-faas", json.dumps(request), "--memory-mb", "3538", "--store", store)
        for hogs in (0, args.hogs):
            procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
            try:
                out = Path(tmp) / f"load{hogs}"
                shpc("bench", "--targets", "local-faas,standalone", "--workloads", "classify",
                     "--shards", "1", "--repeats", str(args.repeats), "--modes", "natural",
                     "--store", store, "--out", str(out), "-q")  # fmt: skip
            finally:
                for p in procs:
                    p.kill()
                for p in procs:
                    p.wait(timeout=30)
            m = medians(out)
            ratio = m["local-faas"] / m["standalone"]
            print(
                f"{hogs} hog(s): local-faas {m['local-faas']:.1f} ms, standalone "
                f"{m['standalone']:.1f} ms, local-faas/standalone {ratio:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
