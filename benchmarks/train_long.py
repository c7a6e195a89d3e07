"""Issue 12's figures: chained training, a kill mid-leg, and data-parallel training.

Each experiment runs through the benchmark driver and real targets, and prints its figures
as JSON from the run's ``batches.jsonl``:

* ``chain``: the default training (15 epochs on 60k images) on ``local-faas`` with a 60 s
  function timeout, so it must go as a chain of legs; with ``--unchained`` also the same
  training in one invocation (900 s timeout) for comparison. Figures: legs, test accuracy,
  total time, epochs to 0.90 and the time to get there.
* ``kill``: a chained training on ``local-faas`` whose instance is killed (SIGKILL, as a
  platform retiring it) mid-way through the epoch after its first checkpoint, then invoked
  again. Figures: the work lost (seconds from the last checkpoint to the kill, against an
  epoch's length), the epochs the second leg trained and how many of them twice (none).
* ``workers``: ``--train-workers 1 2 4`` on ``local-faas`` and ``standalone``: test accuracy
  per round, time (and, where a platform prices it, cost) to 0.90.

These are real trainings of minutes each on the full training set unless ``--epochs`` /
``--train-limit`` make them smaller. Speed is a property of the machine (and of what else
runs on it): run it on the machine you want figures for.

Usage: python benchmarks/train_long.py {chain,kill,workers} [--epochs N] [--train-limit N]
       [--timeout S] [--unchained] [--workers N ...] [--syncs-per-epoch N] [--targets T,T]
       [--out DIR]
       (needs the ``train`` extra)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from serverless_hpc.data.fashion_mnist import ensure_data
from serverless_hpc.driver import BenchConfig, run
from serverless_hpc.targets.base import TargetSettings


def _batches(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]


def _figures(batch: dict[str, Any]) -> dict[str, Any]:
    keep = ("target", "workers", "legs", "test_accuracy", "makespan_ms", "cost_usd")
    out = {k: batch.get(k) for k in keep}
    out.update(
        epochs_to_0_90=batch.get("epochs_to_target"),
        time_to_0_90_s=batch.get("time_to_target_s"),
        cost_to_0_90_usd=batch.get("cost_to_target_usd"),
        curve=[
            (p["epoch"], p["test_accuracy"], round(p["elapsed_s"], 1))
            for p in batch.get("progress", [])
        ],
    )
    return out


def _bench(out: Path, targets: tuple[str, ...], params: dict[str, Any], **kw: Any) -> Path:
    timeout = kw.pop("timeout_s", None)
    settings = TargetSettings(
        data_dir=ensure_data(),
        store_uri=str(out.parent / "store"),
        log_dir=out / "logs",
        timeout_s=timeout,
    )
    cfg = BenchConfig(
        out=out,
        targets=targets,
        workloads=("train",),
        params={"train": params},
        settings=settings,
        run_id=out.name,
        **kw,
    )
    run(cfg)
    return out


def chain(args: argparse.Namespace, root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The training as a chain under a short timeout (and, optionally, in one invocation)."""
    res = {}
    out = _bench(root / "chained", ("local-faas",), params, timeout_s=args.timeout)
    res["chained"] = [_figures(b) for b in _batches(out)]
    if args.unchained:
        out = _bench(root / "unchained", ("local-faas",), params, timeout_s=900.0)
        res["unchained"] = [_figures(b) for b in _batches(out)]
    return res


def kill(args: argparse.Namespace, root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Kill the instance mid-way through the epoch after the first checkpoint."""
    from serverless_hpc.store import open_store
    from serverless_hpc.targets.local_faas import LocalFaasTarget
    from serverless_hpc.workloads.train.checkpoint import Checkpoint, checkpoint_key

    store_dir = root / "store"
    settings = TargetSettings(data_dir=ensure_data(), store_uri=str(store_dir))
    request = {"workload": "train", "params": {**params, "chain": "bench/kill"}}
    key = checkpoint_key("fashion-cnn", "bench/kill")
    store = open_store(str(store_dir))
    with LocalFaasTarget(settings) as target:
        killed: dict[str, Any] = {}

        def killer() -> None:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline and not store.exists(key):
                time.sleep(0.5)
            first = Checkpoint.from_bytes(store.get_bytes(key))
            epoch_s = first.progress[-1]["epoch_s"] if first.progress else 5.0
            time.sleep(epoch_s / 2)  # mid-way through the next epoch
            killed["epoch"] = Checkpoint.from_bytes(store.get_bytes(key)).epoch
            killed["t"] = time.time()
            for worker in target.pool.busy():  # the instance this benchmark started
                worker.proc.kill()

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        t0 = time.time()
        first = target.invoke(request, timeout_s=1800)
        thread.join(timeout=60)
        second = target.invoke(request, timeout_s=1800)
        t1 = time.time()
    result = second.response.get("result") or {}
    progress = result.get("progress", [])
    kept = [e for e in progress if e["t_unix"] < killed.get("t", 0.0)]
    trained_after = [e["epoch"] for e in progress if e["t_unix"] >= killed.get("t", 0.0)]
    last_saved = kept[-1]["t_unix"] + kept[-1].get("eval_s", 0.0) if kept else t0
    return {
        "first_leg_error": first.error,
        "checkpointed_epochs_at_kill": killed.get("epoch"),
        "second_leg_ok": second.ok,
        "second_leg_trained_epochs": trained_after,
        "epochs_trained_twice": sum(1 for e in trained_after if e <= killed.get("epoch", 0)),
        "work_lost_s": round(killed.get("t", t0) - last_saved, 1),
        "epoch_s": round(max(e["epoch_s"] for e in progress), 1) if progress else None,
        "test_accuracy": result.get("test_accuracy"),
        "total_s": round(t1 - t0, 1),
    }


def workers(args: argparse.Namespace, root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """1, 2 and 4 workers (``--workers``) on local-faas and standalone (``--targets``)."""
    out = _bench(
        root / "workers",
        tuple(args.targets.split(",")),
        params,
        train_workers=tuple(args.workers),
        timeout_s=args.timeout,
    )
    return {"workers": [_figures(b) for b in _batches(out)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("chain", "kill", "workers"))
    parser.add_argument("--epochs", type=int, default=None, help="default: the workload's 15")
    parser.add_argument("--train-limit", type=int, default=None, help="default: all 60k")
    parser.add_argument("--timeout", type=float, default=60.0, help="function timeout, s")
    parser.add_argument("--unchained", action="store_true", help="chain: also run unchained")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--syncs-per-epoch", type=int, default=None, help="workers: rounds per epoch"
    )
    parser.add_argument("--learning-rate", type=float, default=None, help="default: 1e-3")
    parser.add_argument("--targets", default="local-faas,standalone", help="workers: targets")
    parser.add_argument("--out", type=Path, help="directory for the runs (default: temporary)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="shpc-train-long-"))
    params: dict[str, Any] = {}
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.train_limit is not None:
        params["train_limit"] = args.train_limit
    if args.syncs_per_epoch is not None:
        params["syncs_per_epoch"] = args.syncs_per_epoch
    if args.learning_rate is not None:
        params["learning_rate"] = args.learning_rate
    experiments = {"chain": chain, "kill": kill, "workers": workers}
    figures = experiments[args.experiment](args, root, params)
    print(json.dumps({"experiment": args.experiment, "params": params, **figures}, indent=2))


if __name__ == "__main__":
    main()
