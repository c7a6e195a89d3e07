"""The coupled-node baseline: the same tiles as worker processes of one machine, exchanging
their halos in shared memory instead of the store.

Two NxN buffers live in shared memory; in each round every process copies its tile and
``steps_per_round``-deep halo out of the current buffer (the in-memory halo exchange), takes
the same steps as a function would, writes its tile into the other buffer, and waits at a
barrier for the others. The final field is bit for bit the store exchange's (the same blocks
go through the same steps).

Every wait has a deadline: the barrier and the joins time out at the invocation's deadline
(or :data:`DEFAULT_DEADLINE_S` where the platform sets none), and a process that fails or
hangs breaks the barrier, so the others stop instead of waiting forever.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import time
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

from serverless_hpc.contract import ContractError
from serverless_hpc.workloads.base import Context, Output

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

log = logging.getLogger(__name__)

#: How long the in-memory job may run where the platform gives no deadline.
DEFAULT_DEADLINE_S = 3600.0


def _tile_process(
    names: tuple[str, str],
    p: dict[str, Any],
    me: int,
    barrier: Barrier,
    timeout_s: float,
    out: Any,
) -> None:
    """One tile's rounds in a worker process; puts its timings (or its error) on ``out``."""
    import numpy as np

    from serverless_hpc.workloads.stencil import kernel, rounds_of

    n, h, steps, alpha = p["n"], p["steps_per_round"], p["steps"], p["alpha"]
    shm = [shared_memory.SharedMemory(name=x) for x in names]
    try:
        bufs = [np.ndarray((n, n), dtype=np.float64, buffer=s.buf) for s in shm]
        boxes = kernel.tiles(n, p["workers"])
        tile = boxes[me]
        ext = tile.grow(h, n)
        t0 = time.perf_counter()
        rows = kernel.initial_rows(n, p["seed"], tile.r0, tile.r1)
        bufs[0][tile.r0 : tile.r1, tile.c0 : tile.c1] = rows[:, tile.c0 : tile.c1]
        timing = {"init_s": time.perf_counter() - t0, "compute_s": 0.0, "exchange_s": 0.0}
        timing["wait_s"] = _wait(barrier, timeout_s)
        t_rounds = time.perf_counter()  # every tile has started: the rounds begin
        for k in range(rounds_of(p)):
            cur, nxt = bufs[k % 2], bufs[(k + 1) % 2]
            t1 = time.perf_counter()
            block = cur[ext.r0 : ext.r1, ext.c0 : ext.c1].copy()
            t2 = time.perf_counter()
            block = kernel.advance(block, min(h, steps - k * h), alpha)
            t3 = time.perf_counter()
            nxt[tile.r0 : tile.r1, tile.c0 : tile.c1] = block[tile.within(ext)]
            t4 = time.perf_counter()
            timing["exchange_s"] += (t2 - t1) + (t4 - t3)
            timing["compute_s"] += t3 - t2
            timing["wait_s"] += _wait(barrier, timeout_s)
        timing["rounds_s"] = time.perf_counter() - t_rounds
        out.put((me, timing, None))
    except Exception as exc:  # noqa: BLE001 - the parent reports it; the barrier releases the others
        barrier.abort()
        out.put((me, None, f"{type(exc).__name__}: {exc}"))
    finally:
        for s in shm:
            s.close()


def _wait(barrier: Barrier, timeout_s: float) -> float:
    t0 = time.perf_counter()
    barrier.wait(timeout_s)
    return time.perf_counter() - t0


def _collect(out: Any, workers: int, deadline: float) -> list[Any]:
    """Every tile process's report, or :class:`ContractError` at the deadline."""
    reports = []
    for _ in range(workers):
        try:
            reports.append(out.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:  # a process hung or died silently
            raise ContractError(
                "in-memory stencil: a tile process gave no result before the deadline"
            ) from None
    return reports


def run_in_memory(args: dict[str, Any], problem: dict[str, Any], ctx: Context) -> Output:
    """Run the whole job on this machine: one process per tile, halos in shared memory.

    ``args``: the request's checked parameters (``n``, ``steps``, ``steps_per_round``,
    ``seed``, ``alpha``, ``workers``, ``verify``); ``problem``: what the result repeats."""
    import numpy as np

    from serverless_hpc.workloads.stencil import kernel, rounds_of

    remaining = ctx.remaining_s()
    timeout_s = max(1.0, (remaining if remaining is not None else DEFAULT_DEADLINE_S) - 1.0)
    deadline = time.monotonic() + timeout_s
    size = args["n"] * args["n"] * 8
    shm = [shared_memory.SharedMemory(create=True, size=size) for _ in range(2)]
    procs: list[Any] = []
    t0 = time.perf_counter()
    try:
        bufs = [np.ndarray((args["n"], args["n"]), dtype=np.float64, buffer=s.buf) for s in shm]
        for b in bufs:
            b.fill(0.0)  # the boundary ring of both buffers: 0, never written
        spawn = mp.get_context("spawn")
        barrier = spawn.Barrier(args["workers"])
        out = spawn.Queue()
        names = (shm[0].name, shm[1].name)
        for i in range(args["workers"]):
            proc = spawn.Process(
                target=_tile_process, args=(names, args, i, barrier, timeout_s, out), daemon=True
            )
            proc.start()
            procs.append(proc)
        reports = _collect(out, args["workers"], deadline)
        errors = [e for _, _, e in reports if e]
        if errors:
            raise ContractError(f"in-memory stencil: a tile process failed: {errors[0]}")
        wall_s = time.perf_counter() - t0
        final = bufs[rounds_of(args) % 2].copy()
    finally:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5.0)
        for s in shm:
            s.close()
            s.unlink()
    t1 = time.perf_counter()
    result: dict[str, Any] = {**problem, **kernel.summarise(final), "items": args["n"] ** 2}
    if args["verify"]:
        ref = kernel.reference(args["n"], args["steps"], args["seed"], args["alpha"])
        result["matches_single_process"] = kernel.digest(ref) == result["sha256"]
    timings = [t for _, t, _ in reports if t]
    total = {k: sum(t[k] for t in timings) for k in ("init_s", "compute_s", "exchange_s", "wait_s")}
    result["wall_s"] = wall_s
    # from the moment every tile process was up to the last round's end (no process start-up)
    result["rounds_wall_s"] = max(t["rounds_s"] for t in timings)
    extra = {
        "exchange_ms": total["exchange_s"] * 1e3,
        "barrier_wait_ms": total["wait_s"] * 1e3,
        "init_ms": total["init_s"] * 1e3,
        "wall_ms": wall_s * 1e3,
        "verify_ms": (time.perf_counter() - t1) * 1e3,
        "store_read_ms": 0.0,
        "store_write_ms": 0.0,
        "bytes_read": 0.0,
        "bytes_written": 0.0,
    }
    return Output(
        result=result, load_ms=0.0, compute_ms=total["compute_s"] * 1e3, extra_timings=extra
    )
