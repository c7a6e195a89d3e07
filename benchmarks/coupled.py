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
  (their wall time, from the moment all were up) and a single process; every field's
  sha256 against the single process's.
* ``kmers``: M x R = 4x4 and 16x16 over synthetic reads: shuffle bytes (what the mappers
  wrote), the map and reduce function-seconds over a single-process count of the same reads
  (in memory), and the store's share of them.
* ``matmul``: N = 4096 staged, at 1/4/16 functions (blocks 4096/2048/1024): GFLOP/s per
  function against numpy's A @ B in one process, total GFLOP/s over the functions' compute
  and over their whole time, store I/O share. BLAS runs ``--blas-threads`` threads in both
  (default 1: the same CPU share for the function and the reference).

Other jobs may share the machine: each repeat runs the single-process reference right
before the job, and the figures are medians of the per-repeat ratios, so both sides of a
ratio saw about the same load; the absolute times are given for scale only.

After each workload, a ``"model": "lambda+s3"`` line: the report's model of the same jobs on
Lambda with S3 between the rounds (:mod:`serverless_hpc.report.store_model`, the platform
profile's ``store`` figures), from the measured compute, bytes and store requests of every
round (the records' ``round_io``, as the report reads them): the modelled compute and store
time per round at each measured fan-out, and the fan-out where the store time per round
overtakes compute (a stencil's per steps-per-round setting: each is another job). A model,
not a measurement.

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
from collections import defaultdict
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


def _records(workload: str, fanout: int, repeat: int, calls: list[Any]) -> list[dict[str, Any]]:
    """The calls of one inline job as the report's record rows (what the model reads)."""
    return [
        {
            "workload": workload,
            "target": "inline",
            "shards": fanout,
            "memory_mb": None,
            "mode": "natural",
            "repeat": repeat,
            "round": c.round,
            "role": c.role,
            "ok": True,
            "result": c.output.result,
        }
        for c in calls
    ]


def model_line(workload: str, records: list[dict[str, Any]], **setting: Any) -> dict[str, Any]:
    """The model of these jobs on Lambda with S3: per measured fan-out the modelled compute
    and store time per round, and the crossover fan-out (printed, and returned)."""
    from serverless_hpc.report.coupled import round_parts
    from serverless_hpc.report.profile import load_profile
    from serverless_hpc.report.store_model import MAX_FANOUT, crossover, project, scalings

    profile = load_profile()
    assert profile.store is not None, "the platform profile has no store figures"
    measured = {shards: parts for (_, _, shards), parts in round_parts(records).items()}
    scaled = scalings(measured)
    speed, _ = profile.speed(workload)
    fanout = crossover(scaled, profile.store, speed)
    line = {
        "model": "lambda+s3",
        "workload": workload,
        **setting,
        "profile_as_of": profile.store.as_of,
        "crossover_fanout": fanout if fanout is not None else f"none up to {MAX_FANOUT}",
        "per_round_ms": {
            f: {
                "compute": round(p.compute_ms, 2),
                "store": round(p.store_ms, 2),
                "throttled": round(p.throttle_ms, 2),
                "bound": p.bound,
            }
            for f in sorted({*measured, *([fanout] if fanout else [])})
            for p in [project(scaled, f, profile.store, speed)]
        },
    }
    print(json.dumps(line), flush=True)
    return line


def _fresh_ctx(root: Path) -> Any:
    from serverless_hpc.workloads.base import Context

    return Context(store_uri=str(root / f"store-{time.monotonic_ns()}"))


def _cleanup(ctx: Any, workload: str, job: str) -> None:
    from serverless_hpc.store import open_store
    from serverless_hpc.workloads.spec import scratch_prefix

    open_store(ctx.store_uri).delete_prefix(scratch_prefix(workload, job))


def bench_stencil(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Tiles x steps per round through the store, the in-memory node, one process: each
    repeat runs all three back to back, so their ratios share the machine's load."""
    from serverless_hpc.workloads import stencil
    from serverless_hpc.workloads.roundio import run_inline
    from serverless_hpc.workloads.stencil import kernel

    n, steps = args.n, args.steps

    def single() -> tuple[float, str]:
        t0 = time.perf_counter()
        field = kernel.reference(n, steps, 1, stencil.ALPHA)
        return time.perf_counter() - t0, kernel.digest(field)

    _, want = single()  # also warms up (page faults, first calls)
    rows: list[dict[str, Any]] = []
    jobs: dict[int, list[dict[str, Any]]] = defaultdict(list)  # per round setting: records
    for tiles in args.tiles:
        for per_round in args.per_round:
            fig: dict[str, list[float]] = defaultdict(list)
            ok = True
            for r in range(args.repeats):
                ctx = _fresh_ctx(root)
                p = {"n": n, "steps": steps, "steps_per_round": per_round, "seed": 1}
                single_s, digest = single()
                ok &= digest == want
                mem = {**p, "exchange": "memory", "verify": False}
                (call,) = run_inline(stencil.SPEC, mem, tiles, ctx)
                ok &= call.output.result["sha256"] == want
                job = f"b{r}"
                calls = run_inline(stencil.SPEC, {**p, "verify": False, "job": job}, tiles, ctx)
                ok &= calls[-1].output.result["sha256"] == want
                jobs[per_round] += _records("stencil", tiles, r, calls)
                work = [c for c in calls if c.role == "worker"]
                wall, io, _ = _io_share(work)
                compute = sum(c.output.compute_ms for c in work) / 1e3
                _cleanup(ctx, "stencil", job)
                fig["single"].append(single_s)
                fig["fn"].append(wall / single_s)
                fig["io"].append(io / wall)
                fig["compute"].append(compute / wall)
                # wall time only: the node's processes share this machine's cores, so the
                # sum of their times is not their work
                fig["mem_wall"].append(call.output.result["rounds_wall_s"] / single_s)
            single_ms = _median(fig["single"]) / steps * 1e3
            row = {
                "tiles": tiles,
                "steps_per_round": per_round,
                "rounds": -(-steps // per_round),
                "single_ms_per_step": single_ms,
                "function_s_over_single": _median(fig["fn"]),
                "store_io_share": _median(fig["io"]),
                "compute_share": _median(fig["compute"]),
                "memory_wall_over_single": _median(fig["mem_wall"]),
                "identical": ok,
                "load": os.getloadavg()[0],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for per_round, records in sorted(jobs.items()):
        rows.append(model_line("stencil", records, n=n, steps=steps, steps_per_round=per_round))
    return rows


def bench_kmers(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """M x R shuffles through the store against one in-memory count, back to back."""
    from serverless_hpc.workloads import kmers
    from serverless_hpc.workloads.kmers import function
    from serverless_hpc.workloads.roundio import run_inline

    base = {**kmers.DEFAULTS, "reads": args.reads}
    p = function.KmersParams(**base, worker=0)
    reads = function.synthetic_reads(p, 0, p.reads)
    want = function.counts_digest(function.count_kmers(reads, p.k))  # also warms up
    rows = []
    records: list[dict[str, Any]] = []
    for m in args.mappers:
        fig: dict[str, list[float]] = defaultdict(list)
        ok = True
        for r in range(args.repeats):
            t0 = time.perf_counter()
            function.count_kmers(reads, p.k)
            single_s = time.perf_counter() - t0
            ctx = _fresh_ctx(root)
            calls = run_inline(kmers.SPEC, {**base, "job": f"b{r}"}, m, ctx)
            records += _records("kmers", m, r, calls)
            final = calls[-1].output.result
            ok &= final["counts_sha256"] == want and final["matches_single_process"]
            map_s, map_io, shuffled = _io_share([c for c in calls if c.role == "map"])
            red_s, red_io, _ = _io_share([c for c in calls if c.role == "reduce"])
            _cleanup(ctx, "kmers", f"b{r}")
            fig["single"].append(single_s)
            fig["map"].append(map_s / single_s)
            fig["reduce"].append(red_s / single_s)
            fig["share"].append((map_io + red_io) / (map_s + red_s))
            fig["bytes"].append(shuffled)
        row = {
            "mappers": m,
            "reducers": m,
            "reads": args.reads,
            "shuffle_objects": m * m,
            "shuffle_mb": _median(fig["bytes"]) / 1e6,
            "single_process_s": _median(fig["single"]),
            "map_over_single": _median(fig["map"]),
            "reduce_over_single": _median(fig["reduce"]),
            "store_io_share": _median(fig["share"]),
            "identical": ok,
            "load": os.getloadavg()[0],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows.append(model_line("kmers", records, reads=args.reads))
    return rows


def bench_matmul(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Staged N x N at 1/4/16 functions against numpy's product in one process, back to
    back."""
    import numpy as np

    from serverless_hpc.workloads import matmul
    from serverless_hpc.workloads.roundio import run_inline

    n = args.matmul_n
    a = matmul.a_rows(7, 0, n, n)
    b = matmul.b_cols(7, 0, n, n)

    def single() -> float:
        t0 = time.perf_counter()
        np.matmul(a, b)
        return 2.0 * n**3 / (time.perf_counter() - t0) / 1e9

    single()  # warms up
    rows = []
    records: list[dict[str, Any]] = []
    for f in args.functions:
        block = n // math.isqrt(f)
        fig: dict[str, list[float]] = defaultdict(list)
        errs = []
        for r in range(args.repeats):
            ref = single()
            ctx = _fresh_ctx(root)
            p = {"n": n, "block": block, "seed": 7, "staged": True, "job": f"b{r}"}
            calls = run_inline(matmul.SPEC, p, f, ctx)
            records += _records("matmul", f, r, calls)
            comp = [c for c in calls if c.role == "compute"]
            per_fn = _median([c.output.result["gflops"] for c in comp])
            flops = sum(c.output.result["flops"] for c in comp)
            wall, io, _ = _io_share(comp)
            errs.append(calls[-1].output.result["max_rel_error"])
            _cleanup(ctx, "matmul", f"b{r}")
            fig["ref"].append(ref)
            fig["per_fn"].append(per_fn)
            fig["ratio"].append(per_fn / ref)
            fig["over_compute"].append(
                flops / sum(c.output.result["compute_s"] for c in comp) / 1e9
            )
            fig["over_wall"].append(flops / wall / 1e9)
            fig["share"].append(io / wall)
        row = {
            "n": n,
            "functions": f,
            "block": block,
            "numpy_single_gflops": _median(fig["ref"]),
            "gflops_per_function": _median(fig["per_fn"]),
            "function_over_numpy": _median(fig["ratio"]),
            "gflops_over_compute": _median(fig["over_compute"]),
            "gflops_over_function_time": _median(fig["over_wall"]),
            "store_io_share": _median(fig["share"]),
            "max_rel_error": max(errs),
            "load": os.getloadavg()[0],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows.append(model_line("matmul", records, n=n, staged=True))
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
    meta: dict[str, Any] = {
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
