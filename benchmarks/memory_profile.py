"""Memory buys CPU on local-faas: what the control groups enforce, measured on this machine.

Three measurements (issue "Memory is CPU"), all on ``local-faas`` through its real code path:

1. **CPU follows memory** (``lambda`` profile): warm ``classify`` of 3000 images in one shard
   at 512, 1024, 1769 and 3538 MB. On Lambda compute time scales with 1/CPU share, so the
   512 MB / 1769 MB time ratio should be near 1769/512 = 3.46, and 3538 MB (two vCPUs) should
   beat 1769 MB where the work uses two threads.
2. **The memory limit during the invocation**: a ``sleep`` of 20 s holding more memory than
   its size; the kernel kills it (the duration is far below 20 s), the record is
   ``OutOfMemory``, and the next invocation starts a fresh instance.
3. **What the groups cost**: warm invocations and cold starts with the ``none`` profile (no
   group) against groups at 10,240 MB (a quota above this machine's CPUs, so nothing is
   throttled): the ``lambda`` profile without its CPU reservation (only the group mechanism
   differs from ``none``), and the ``lambda`` profile itself (the reservation shows what
   other load on the machine takes from an unreserved instance), interleaved so load drifts
   hit all alike.

Classify needs a trained model: a small one is trained first into a temporary store
(``train`` with 1 epoch on 3000 images), never the default training.

Usage: python benchmarks/memory_profile.py [--warm N] [--json OUT]
(needs root and cgroups for (1)-(3) to measure enforcement; elsewhere the records say which
fallback applied, and the figures are then not the platform's.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serverless_hpc.invocation import Outcome
from serverless_hpc.targets import resources
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.local_faas import LocalFaasTarget

SIZES = (512, 1024, 1769, 3538)
log = logging.getLogger("memory_profile")


def _settings(store: str, data: Path | None, memory: int, profile: str) -> TargetSettings:
    return TargetSettings(
        data_dir=data,
        store_uri=store,
        memory_mb=memory,
        concurrency=1,
        keep_alive_s=600,
        extra={"profile": profile},
    )


def _check(out: Outcome, what: str) -> Outcome:
    if not out.ok:
        raise SystemExit(f"{what} failed: {out.error}")
    return out


def train(store: str, data: Path | None) -> str:
    """A small model (1 epoch, 3000 images) into ``store``; its version."""
    with LocalFaasTarget(_settings(store, data, 4096, "none")) as t:
        req = {"workload": "train", "params": {"epochs": 1, "train_limit": 3000}}
        out = _check(t.invoke(req, timeout_s=900), "training the small model")
    return str(out.response["result"]["version"])


def classify_at_sizes(store: str, data: Path | None, warm: int) -> list[dict[str, Any]]:
    """Warm classify of 3000 images, one shard, at each size (lambda profile)."""
    rows = []
    req = {"workload": "classify", "params": {"start": 0, "end": 3000, "return_labels": False}}
    for size in SIZES:
        with LocalFaasTarget(_settings(store, data, size, "lambda")) as t:
            cold = _check(t.invoke(req, timeout_s=300), f"classify at {size} MB (cold)")
            outs = [
                _check(t.invoke(req, timeout_s=300), f"classify at {size} MB") for _ in range(warm)
            ]
        compute = [float(o.response["timings"]["compute_ms"]) for o in outs]
        rows.append(
            {
                "memory_mb": size,
                "cpus": outs[0].resources.get("cpus"),
                "enforcement": outs[0].resources,
                "cold_init_ms": cold.init_ms,
                "warm_compute_median_ms": statistics.median(compute),
                "warm_compute_ms": compute,
                "warm_duration_median_ms": statistics.median(o.duration_ms or 0.0 for o in outs),
                "oversubscribed": any(o.oversubscribed for o in outs),
            }
        )
        log.info("classify %d MB: %.0f ms compute", size, rows[-1]["warm_compute_median_ms"])
    return rows


def out_of_memory(store: str, data: Path | None) -> dict[str, Any]:
    """A 20 s sleep holding 900 MB at 512 MB, then a plain invocation."""
    with LocalFaasTarget(_settings(store, data, 512, "lambda")) as t:
        first = _check(t.invoke({"workload": "sleep", "params": {}}, timeout_s=60), "sleep")
        oom = t.invoke(
            {"workload": "sleep", "params": {"seconds": 20, "alloc_mb": 900}}, timeout_s=60
        )
        after = t.invoke({"workload": "sleep", "params": {}}, timeout_s=60)
    return {
        "requested_sleep_s": 20,
        "error": oom.error,
        "duration_ms": oom.duration_ms,
        "enforcement": oom.resources,
        "instance_before": first.instance,
        "instance_killed": oom.instance,
        "next_instance": after.instance,
        "next_cold": after.cold,
        "next_ok": after.ok,
    }


def overhead(store: str, data: Path | None, warm: int, cold: int) -> dict[str, Any]:
    """Warm and cold ``sleep`` with no group (none) and in a group (lambda, 10,240 MB)."""
    req = {"workload": "sleep", "params": {}}
    unreserved = dataclasses.replace(resources.PROFILES["lambda"], reserve=False)
    targets = {
        "none": LocalFaasTarget(_settings(store, data, 10240, "none")),
        "cgroup": LocalFaasTarget(
            _settings(store, data, 10240, "lambda"),
            manager=resources.ResourceManager(unreserved),
        ),
        "cgroup+reserve": LocalFaasTarget(_settings(store, data, 10240, "lambda")),
    }
    res: dict[str, dict[str, list[float]]] = {
        k: {"warm": [], "init": [], "setup": []} for k in targets
    }
    for t in targets.values():
        t.open()
    try:
        for name, t in targets.items():  # one warm instance each
            _check(t.invoke(req, timeout_s=60), f"{name} warm-up")
        for _ in range(max(1, warm // 10)):
            for name, t in targets.items():
                for _ in range(10):
                    t0 = time.perf_counter()
                    _check(t.invoke(req, timeout_s=60), f"{name} warm")
                    res[name]["warm"].append((time.perf_counter() - t0) * 1e3)
        for _ in range(cold):
            for name, t in targets.items():
                out = _check(t.invoke(req, timeout_s=60, force_cold=True), f"{name} cold")
                res[name]["init"].append(out.init_ms or 0.0)
                res[name]["setup"].append(out.extra.get("cgroup_setup_ms", 0.0))
        enforcement = {n: t.describe()["enforcement"] for n, t in targets.items()}
    finally:
        for t in targets.values():
            t.close()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in res.items()}
    return {
        "enforcement": enforcement,
        "warm_client_median_ms": {n: m["warm"] for n, m in med.items()},
        "cold_init_median_ms": {n: m["init"] for n, m in med.items()},
        "group_setup_median_ms": med["cgroup"]["setup"],
        "warm_overhead_ms": med["cgroup"]["warm"] - med["none"]["warm"],
        "cold_overhead_ms": med["cgroup"]["init"] + med["cgroup"]["setup"] - med["none"]["init"],
        "samples": {"warm": len(res["none"]["warm"]), "cold": cold},
    }


def placement(n: int) -> dict[str, Any]:
    """The child-side cost of joining a group: ``/bin/true`` spawned plainly and through
    :meth:`InstanceGroup.wrap` (``sh`` writing its pid to both hierarchies, then ``exec``),
    interleaved; the group has no quota, so only the mechanism differs."""
    import subprocess

    unlimited = dataclasses.replace(resources.PROFILES["lambda"], mb_per_cpu=1.0, reserve=False)
    manager = resources.ResourceManager(unlimited)
    manager.open()
    try:
        group = manager.group_for(100_000)  # a quota far above the machine: never throttled
        times: dict[str, list[float]] = {"plain": [], "wrapped": []}
        for _ in range(n):
            for name, argv in (("plain", ["/bin/true"]), ("wrapped", group.wrap(["/bin/true"]))):
                t0 = time.perf_counter()
                subprocess.run(argv, check=True, timeout=30)
                times[name].append((time.perf_counter() - t0) * 1e3)
        group.remove()
        mode = group.enforcement["cpu"]
    finally:
        manager.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"enforcement": mode, "median_ms": med, "placement_ms": med["wrapped"] - med["plain"]}


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements; print a summary and optionally write all figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=7, help="warm classify invocations per size")
    parser.add_argument("--overhead-warm", type=int, default=60)
    parser.add_argument("--overhead-cold", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    data = Path(os.environ["FASHION_MNIST_DIR"]) if "FASHION_MNIST_DIR" in os.environ else None
    with tempfile.TemporaryDirectory(prefix="shpc-memprof-") as tmp:
        store = str(Path(tmp) / "store")
        t0 = time.monotonic()
        version = train(store, data)
        log.info("trained model %s in %.0f s", version, time.monotonic() - t0)
        sizes = classify_at_sizes(store, data, args.warm)
        oom = out_of_memory(store, data)
        cost = overhead(store, data, args.overhead_warm, args.overhead_cold)
        cost["placement"] = placement(200)
    by = {r["memory_mb"]: r["warm_compute_median_ms"] for r in sizes}
    ratio = by[512] / by[1769]
    result = {
        "machine_cpus": len(os.sched_getaffinity(0)),
        "classify": sizes,
        "ratio_512_over_1769": ratio,
        "expected_ratio": 1769 / 512,
        "ratio_within_25pct": abs(ratio / (1769 / 512) - 1) <= 0.25,
        "faster_at_3538_than_1769": by[3538] < by[1769],
        "out_of_memory": oom,
        "overhead": cost,
    }
    print("memory MB | CPUs  | warm classify compute (median ms)")
    for r in sizes:
        print(f"{r['memory_mb']:9d} | {r['cpus']:.3f} | {r['warm_compute_median_ms']:8.1f}")
    print(
        f"512/1769 time ratio {ratio:.2f} (1769/512 = {1769 / 512:.2f}; within 25%: "
        f"{result['ratio_within_25pct']}); 3538 faster than 1769: "
        f"{result['faster_at_3538_than_1769']}"
    )
    print(
        f"OOM: {oom['error']} after {oom['duration_ms']:.0f} ms of a 20 s sleep; next instance "
        f"{oom['next_instance']} (killed {oom['instance_killed']}), cold={oom['next_cold']}"
    )
    print(
        f"group overhead: warm {cost['warm_overhead_ms']:+.2f} ms "
        f"(client median {cost['warm_client_median_ms']}), cold start "
        f"{cost['cold_overhead_ms']:+.1f} ms (init medians {cost['cold_init_median_ms']}, "
        f"group setup {cost['group_setup_median_ms']:.2f} ms)"
    )
    place = cost["placement"]
    print(
        f"joining the group before exec: {place['placement_ms']:+.2f} ms per spawn "
        f"(/bin/true plain {place['median_ms']['plain']:.2f} ms, wrapped "
        f"{place['median_ms']['wrapped']:.2f} ms, {place['enforcement']}); group setup in the "
        f"driver {cost['group_setup_median_ms']:.2f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
