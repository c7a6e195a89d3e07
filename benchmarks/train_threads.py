"""Does the trained model depend on the function's memory size (its CPUs)? Trains the same
small model on ``local-faas`` at two memory sizes (so two CPU quotas) and compares the
exported ``.tflite`` bytes.

    .venv/bin/python benchmarks/train_threads.py [--memory-mb 2600,3538] [--epochs 1]
        [--train-limit 6000]

Prints one line per size (test accuracy, sha256 of model.tflite) and whether they are equal.
``taskset -c 0 .venv/bin/python benchmarks/train_threads.py --memory-mb 3538`` holds the
instance to one CPU, to compare with the two-CPU result.
Needs the train extra and the Fashion-MNIST files ($FASHION_MNIST_DIR).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def train(store: Path, memory_mb: int, epochs: int, limit: int, model: str) -> tuple[str, float]:
    """One training through ``shpc invoke`` on local-faas; (sha256 of the .tflite, accuracy)."""
    request = {
        "workload": "train",
        "params": {"epochs": epochs, "train_limit": limit, "model": model},
    }
    done = subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", "invoke", "local-faas", json.dumps(request),
         "--memory-mb", str(memory_mb), "--store", f"file://{store}", "--timeout", "900"],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"training at {memory_mb} MB failed:\n{done.stdout[-2000:]}")
    reply = json.loads(done.stdout[done.stdout.index("{") :])
    result = reply["response"]["result"]
    version = result["version"]
    tflite = (store / "models" / model / version / "model.tflite").read_bytes()
    return hashlib.sha256(tflite).hexdigest(), float(result["test_accuracy"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory-mb", default="2600,3538")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=6000)
    args = ap.parse_args()
    sizes = [int(m) for m in args.memory_mb.split(",")]
    digests = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes:
            digest, acc = train(Path(tmp), mb, args.epochs, args.train_limit, f"threads{mb}")
            digests.append(digest)
            print(f"{mb} MB: test accuracy {acc:.4f}, model.tflite sha256 {digest[:16]}")
    print("identical" if len(set(digests)) == 1 else "DIFFERENT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
