"""``stencil``: the 2-D heat equation by explicit Jacobi steps, tiled over functions.

The kernel of weather and climate codes, and the simplest coupled HPC job: every step of
every cell needs its four neighbours, so tiles of the grid must exchange their edges.

The problem: an NxN float64 grid, initially ``numpy.random.default_rng(seed).random((N, N))``
with the outer ring set to 0 and held at 0 (Dirichlet); each step sets every interior cell to
``u + alpha * ((u_n + u_s + u_w + u_e) - 4.0 * u)`` (``u_n = u[i-1, j]``, ``u_s = u[i+1, j]``,
``u_w = u[i, j-1]``, ``u_e = u[i, j+1]``, added left to right); ``alpha`` 0.2; ``steps`` steps.

The job, in rounds (the batch's fan-out is the tile count; tiles form the squarest grid of
that many): each round a function reads its tile and its neighbours' halo pieces (what the
previous round wrote to the store), advances ``steps_per_round`` steps, and writes its tile
and the halo pieces the neighbours need next. The halo is ``steps_per_round`` cells deep:
deeper halos cost redundant compute at the tile edges but fewer rounds. After the last round
one combine step assembles the field and reports its ``sha256`` (the whole NxN field,
boundary included, C-order little-endian float64 bytes), its sum, and N, T (``steps``), seed
and alpha. Every tiling and halo depth gives the single-process field bit for bit (each cell
is computed from the same values by the same operations), which the combine step checks
against a single-process run when ``verify`` is set, and :func:`check` across batches.

The coupled-node baseline: ``exchange="memory"`` runs the same tiles in one invocation, as
worker processes of one machine exchanging their halos through shared memory (one round in
the plan). That is for the VM targets (``standalone``, ``ec2``): select it there with
``--param stencil.exchange=memory``; on a function platform it measures one function's
cores, not a node's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from serverless_hpc.ranges import split_ranges
from serverless_hpc.workloads.spec import (
    FANOUT_PANELS,
    Check,
    Option,
    Range,
    RoundPlan,
    StoreAccess,
    WorkloadSpec,
    combine_failures,
)

#: The diffusion number of the issue's problem (stable for alpha <= 0.25).
ALPHA: Final = 0.2
MIN_N, MAX_N = 3, 32_768
MAX_STEPS: Final = 1_000_000
#: Base parameters: small, so a test run takes seconds.
DEFAULTS: Final = {"n": 64, "steps": 8, "steps_per_round": 2, "seed": 1}


def layout(tiles: int) -> tuple[int, int]:
    """The squarest grid of ``tiles`` tiles: (rows, cols) with rows <= cols."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    rows = math.isqrt(tiles)
    while tiles % rows:
        rows -= 1
    return rows, tiles // rows


def tile_ranges(n: int, tiles: int) -> list[tuple[Range, Range]]:
    """Each tile's (rows, cols) range of the NxN grid, boundary included, row-major.

    ``ValueError`` when the grid cannot be split that many ways (a tile under one cell).
    """
    rows, cols = layout(tiles)
    try:
        rr, cc = split_ranges(n, rows), split_ranges(n, cols)
    except ValueError:
        raise ValueError(f"the {n}x{n} grid cannot be split into {rows}x{cols} tiles") from None
    return [(r, c) for r in rr for c in cc]


def rounds_of(params: Mapping[str, Any]) -> int:
    """Rounds of the store exchange: ``ceil(steps / steps_per_round)``."""
    return -(-int(params["steps"]) // int(params["steps_per_round"]))


def plan_rounds(params: Mapping[str, Any], workers: int) -> int:
    """One round in memory (one invocation runs the whole job), else :func:`rounds_of`."""
    if params.get("exchange", "store") == "memory":
        return 1
    tile_ranges(int(params["n"]), workers)  # refuse an impossible tiling now, not mid-job
    return rounds_of(params)


def plan_requests(
    params: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Round ``rnd``'s requests: one per tile; after the last round, the assembling step."""
    base = {k: v for k, v in params.items() if k not in ("start", "end")}
    if base.get("exchange", "store") == "memory":
        return [{**base, "round": 0, "workers": workers}], None
    out = [{**base, "round": rnd, "worker": i, "workers": workers} for i in range(workers)]
    last = rnd == rounds_of(base) - 1
    return out, ({**base, "round": rnd, "workers": workers, "phase": "assemble"} if last else None)


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The batch line: the final field's digest and sum, and the problem it solves."""
    final = [r for r in results if "sha256" in r]
    if len(final) != 1:
        raise ValueError(f"expected one assembled field, got {len(final)}")
    r = final[0]
    keys = ("n", "steps", "seed", "alpha", "steps_per_round", "tiles", "exchange", "rounds")
    out = {k: r[k] for k in keys if k in r}
    out.update(sha256=str(r["sha256"]), sum=float(r["sum"]))
    if "matches_single_process" in r:
        out["matches_single_process"] = bool(r["matches_single_process"])
    return out


def check(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every batch of one problem (N, T, seed, alpha) ends in the same field, bit for bit,
    whatever its tiling, halo depth or exchange; and equals the single-process run where
    the combine step compared them."""
    by_problem: dict[tuple[Any, ...], set[str]] = {}
    for b in batches:
        if b.get("sha256"):
            key = (b.get("n"), b.get("steps"), b.get("seed"), b.get("alpha"))
            by_problem.setdefault(key, set()).add(str(b["sha256"]))
    out: list[Check] = []
    if by_problem:
        split = {k: v for k, v in by_problem.items() if len(v) > 1}
        out.append(
            Check(
                f"{SPEC.name}: every tiling gives the identical field (sha256)",
                not split,
                f"{len(by_problem)} problem(s), "
                + (f"{len(split)} with differing fields" if split else "one field each"),
            )
        )
    compared = [b["matches_single_process"] for b in batches if "matches_single_process" in b]
    if compared:
        out.append(
            Check(
                f"{SPEC.name}: the tiled field equals a single-process run bit for bit",
                all(compared),
                f"{sum(compared)} of {len(compared)} batches compared equal",
            )
        )
    out += combine_failures(SPEC.name, batches, "field was assembled")
    return out


def _cells(params: Mapping[str, Any]) -> int:
    n = int(params["n"])
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"n must be between {MIN_N} and {MAX_N}, got {n}")
    return n * n


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="2-D heat equation by Jacobi steps, tiles over functions exchanging halos via "
    "the store",
    function_module=f"{__name__}.function",
    store=StoreAccess.SCRATCH,
    memory_mb=2048,
    timeout_s=300.0,
    order=60,
    default=False,
    plan_params=DEFAULTS,
    options=(
        Option("n", int, "grid side N", MIN_N, MAX_N),
        Option("steps", int, "Jacobi steps T", 1, MAX_STEPS),
        Option("steps_per_round", int, "steps a round, the halo's depth", 1, MAX_STEPS),
        Option("seed", int, "seed of the initial field", 0, 2**63 - 1),
        Option("alpha", float, "diffusion number (stable up to 0.25)", 1e-9, 0.25),
        Option(
            "exchange",
            str,
            "halos through the store, or in memory on one machine (the VM baseline)",
            choices=("store", "memory"),
        ),
        Option("verify", bool, "also compute the field in one process and compare"),
    ),
    input_size=_cells,
    combine=combine,
    combine_needs_all=True,
    check=check,
    panels=FANOUT_PANELS,
    rounds=RoundPlan(rounds=plan_rounds, requests=plan_requests),
)
