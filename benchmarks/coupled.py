"""Coupled workloads through the store against one process: stencil, kmers, matmul (staged).

Every job runs by calling its function directly, round by round, in this process, against a
local store in a fresh directory (:func:`serverless_hpc.workloads.roundio.run_inline`): no
platform in between, so the figures are the functions' own work and store I/O. The functions
of a round run one after another, so the "function-seconds" below are the work a fan-out
costs in all (what a platform bills), not its makespan on many machines. Each figure is the
median of ``--repeats`` runs; the comparisons are ratios within one run of this script.

* ``stencil``: N x N, ``--steps`` steps, at 1/4/16 tiles and 1/4/16 steps per round:
  function-seconds per step, the shares of it in store reads and writes and in the Jacobi
  steps, against the same tiles as processes of one machine exchanging halos in memory
  (their compute + exchange seconds per step, and their wall time per step from the moment
  all were up) and a single process; every field's sha256 against the single process's.
* ``kmers``: M x R = 4x4 and 16x16 over synthetic reads: shuffle bytes (what the mappers
  wrote), the map and reduce function-seconds and their store share, against a
  single-process count of the same reads (in memory).
* ``matmul``: N = 4096 staged, at 1/4/16 functions (blocks 4096/2048/1024): GFLOP/s per
  function, total GFLOP/s over the functions' compute, store I/O share, against numpy's
  A @ B in one process. BLAS runs ``--blas-threads`` threads in both (default 1: the same
  CPU share for the function and the reference).

Usage: python benchmarks/coupled.py {stencil,kmers,matmul,all} [--repeats N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _io_share(calls: list[Any]) -> tuple[float, float, float]:
    """(function-seconds, store seconds, bytes written) over ``calls``."""
    wall = sum(c.wall_s for c in calls)
    io = sum(
        (
            c.output.extra_timings.get("store_read_ms", 0.0)
            + c.output.extra_timings.get("store_write_ms", 0.0)
        )
        / 1e3
        for c in calls
    )
    written = sum(c.output.extra_timings.get("bytes_written", 0.0) for c in calls)
    return wall, io, written


def _fresh_ctx(root: Path) -> Any:
    from serverless_hpc.workloads.base import Context

    return Context(store_uri=str(root / f"store-{time.monotonic_ns()}"))


def _cleanup(ctx: Any, workload: str, job: str) -> None:
    from serverless_hpc.store import open_store
    from serverless_hpc.workloads.spec import scratch_prefix

    open_store(ctx.store_uri).delete_prefix(scratch_prefix(workload, job))


def bench_stencil(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Tiles x steps per round through the store, the in-memory node, one process."""
    from serverless_hpc.workloads import stencil
    from serverless_hpc.workloads.roundio import run_inline
    from serverless_hpc.workloads.stencil import kernel

    n, steps = args.n, args.steps
    times = []
    for _ in range(args.repeats + 1):  # the first warms up (page faults, first calls)
        t0 = time.perf_counter()
        ref = kernel.reference(n, steps, 1, stencil.ALPHA)
        times.append(time.perf_counter() - t0)
    single_s = _median(times[1:])
    want = kernel.digest(ref)
    del ref
    rows: list[dict[str, Any]] = []
    print(f"stencil N={n} T={steps}: one process {single_s / steps * 1e3:.1f} ms/step", flush=True)
    for tiles in args.tiles:
        for per_round in args.per_round:
            walls, shares, computes, mem_walls, mem_work, ok = [], [], [], [], [], True
            for r in range(args.repeats):
                ctx = _fresh_ctx(root)
                p = {"n": n, "steps": steps, "steps_per_round": per_round, "seed": 1}
                mem = {**p, "exchange": "memory", "verify": False}
                (call,) = run_inline(stencil.SPEC, mem, tiles, ctx)
                mem_walls.append(call.output.result["rounds_wall_s"])
                t = call.output
                mem_work.append((t.compute_ms + t.extra_timings["exchange_ms"]) / 1e3)
                ok &= call.output.result["sha256"] == want
                job = f"b{r}"
                calls = run_inline(stencil.SPEC, {**p, "verify": False, "job": job}, tiles, ctx)
                ok &= calls[-1].output.result["sha256"] == want
                work = [c for c in calls if c.role == "worker"]
                wall, io, _ = _io_share(work)
                walls.append(wall)
                shares.append(io / wall)
                computes.append(sum(c.output.compute_ms for c in work) / 1e3 / wall)
                _cleanup(ctx, "stencil", job)
            row = {
                "tiles": tiles,
                "steps_per_round": per_round,
                "rounds": -(-steps // per_round),
                "function_ms_per_step": _median(walls) / steps * 1e3,
                "store_io_share": _median(shares),
                "compute_share": _median(computes),
                "memory_work_ms_per_step": _median(mem_work) / steps * 1e3,
                "memory_wall_ms_per_step": _median(mem_walls) / steps * 1e3,
                "single_ms_per_step": single_s / steps * 1e3,
                "identical": ok,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def bench_kmers(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """M x R shuffles through the store against one in-memory count."""
    from serverless_hpc.workloads import kmers
    from serverless_hpc.workloads.kmers import function
    from serverless_hpc.workloads.roundio import run_inline

    base = {**kmers.DEFAULTS, "reads": args.reads}
    p = function.KmersParams(**base, worker=0)
    reads = function.synthetic_reads(p, 0, p.reads)
    singles = []
    for _ in range(args.repeats + 1):
        t0 = time.perf_counter()
        single = function.count_kmers(reads, p.k)
        singles.append(time.perf_counter() - t0)
    want = function.counts_digest(single)
    del reads, single
    rows = []
    for m in args.mappers:
        out: dict[str, list[float]] = {"map": [], "reduce": [], "share": [], "bytes": []}
        ok = True
        for r in range(args.repeats):
            ctx = _fresh_ctx(root)
            calls = run_inline(kmers.SPEC, {**base, "job": f"b{r}"}, m, ctx)
            final = calls[-1].output.result
            ok &= final["counts_sha256"] == want and final["matches_single_process"]
            maps = [c for c in calls if c.role == "map"]
            reds = [c for c in calls if c.role == "reduce"]
            map_s, map_io, shuffled = _io_share(maps)
            red_s, red_io, _ = _io_share(reds)
            out["map"].append(map_s)
            out["reduce"].append(red_s)
            out["share"].append((map_io + red_io) / (map_s + red_s))
            out["bytes"].append(shuffled)
            _cleanup(ctx, "kmers", f"b{r}")
        row = {
            "mappers": m,
            "reducers": m,
            "reads": args.reads,
            "shuffle_objects": m * m,
            "shuffle_mb": _median(out["bytes"]) / 1e6,
            "map_s": _median(out["map"]),
            "reduce_s": _median(out["reduce"]),
            "store_io_share": _median(out["share"]),
            "single_process_s": _median(singles[1:]),
            "identical": ok,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_matmul(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Staged N x N at 1/4/16 functions against numpy's product in one process."""
    import numpy as np

    from serverless_hpc.workloads import matmul
    from serverless_hpc.workloads.roundio import run_inline

    n = args.matmul_n
    a = np.vstack([matmul.a_rows(7, 0, n, n)])
    b = np.hstack([matmul.b_cols(7, 0, n, n)])
    single = []
    for _ in range(args.repeats + 1):  # the first warms up
        t0 = time.perf_counter()
        _ = a @ b
        single.append(time.perf_counter() - t0)
    del a, b, _
    ref_gflops = 2.0 * n**3 / _median(single[1:]) / 1e9
    print(f"matmul N={n}: numpy in one process {ref_gflops:.1f} GFLOP/s", flush=True)
    rows = []
    for f in args.functions:
        side = math.isqrt(f)
        block = n // side
        per_fn, total, share, errs = [], [], [], []
        for r in range(args.repeats):
            ctx = _fresh_ctx(root)
            p = {"n": n, "block": block, "seed": 7, "staged": True, "job": f"b{r}"}
            calls = run_inline(matmul.SPEC, p, f, ctx)
            comp = [c for c in calls if c.role == "compute"]
            per_fn.append(_median([c.output.result["gflops"] for c in comp]))
            flops = sum(c.output.result["flops"] for c in comp)
            total.append(flops / sum(c.output.result["compute_s"] for c in comp) / 1e9)
            wall, io, _ = _io_share(comp)
            share.append(io / wall)
            errs.append(calls[-1].output.result["max_rel_error"])
            _cleanup(ctx, "matmul", f"b{r}")
        row = {
            "n": n,
            "functions": f,
            "block": block,
            "gflops_per_function": _median(per_fn),
            "gflops_over_compute": _median(total),
            "store_io_share": _median(share),
            "numpy_single_gflops": ref_gflops,
            "ratio_to_numpy": _median(per_fn) / ref_gflops,
            "max_rel_error": max(errs),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("stencil", "kmers", "matmul", "all"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=4096, help="stencil grid side")
    parser.add_argument("--steps", type=int, default=16, help="stencil steps")
    parser.add_argument(
        "--tiles", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16]
    )
    parser.add_argument(
        "--per-round", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16]
    )
    parser.add_argument("--reads", type=int, default=200_000, help="kmers synthetic reads")
    parser.add_argument("--mappers", type=lambda s: [int(x) for x in s.split(",")], default=[4, 16])
    parser.add_argument("--matmul-n", type=int, default=4096)
    parser.add_argument(
        "--functions", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16]
    )
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--store-dir", type=Path, default=None, help="where the local store lives")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if "numpy" in sys.modules:
        raise SystemExit("error: numpy was imported before the BLAS thread count was set")
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    os.environ["OMP_NUM_THREADS"] = str(args.blas_threads)
    benches: dict[str, Callable[[argparse.Namespace, Path], list[dict[str, Any]]]] = {
        "stencil": bench_stencil,
        "kmers": bench_kmers,
        "matmul": bench_matmul,
    }
    chosen = list(benches) if args.what == "all" else [args.what]
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "load_before": os.getloadavg(),
        "repeats": args.repeats,
    }
    print(json.dumps(meta), flush=True)
    results: dict[str, Any] = {"meta": meta}
    with tempfile.TemporaryDirectory(dir=args.store_dir, prefix="shpc-coupled-") as tmp:
        for name in chosen:
            t0 = time.perf_counter()
            results[name] = benches[name](args, Path(tmp))
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    meta["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
