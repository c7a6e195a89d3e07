"""``matmul``: C = A·B for NxN float64 matrices, one function per set of blocks of C.

Two modes. By default (``staged`` false) a function generates its slices of A and B from
the seed and returns its blocks of C in its reply (below). With ``staged`` true the job runs
in rounds through the store, at HPC size: round 0 stages A as row-panels and B as
column-panels in the store (each of the batch's functions generates a share of the panels
once); round 1 has each function read the panels its blocks need and write its blocks of
C back to the store (no reply-size limit); a combine step then checks that every block of
C is there and recomputes :data:`CHECK_BLOCKS` of them (chosen by the seed) from the panels
against the function's. N goes up to what one 10 GB function holds: a function holds one
row-panel and its column-panels (see :func:`staged_bytes`).

The classic dense linear-algebra job in the spirit of numpywren: A and B are generated from a
seed, block by block (row-block ``i`` of A and column-block ``j`` of B each from their own
seeded generator), so a function computing block C[i, j] makes only the two slices it needs
and any fan-out computes the same matrices. A batch splits the ``(N / block)²`` blocks of C
into contiguous ranges; the combine step assembles C and checks it against a single-node
product (max relative error within :data:`MAX_REL_ERROR`); each record carries its blocks'
GFLOP/s.

Payload: a shard returns ``8·block²`` bytes per block (base64, so a third more). At the
defaults (N = 512, block = 128) one shard returns about 2.8 MB: within Lambda's 6 MB
synchronous limit, beyond OpenWhisk's default 1 MB result limit (use 4 shards or more there).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from serverless_hpc.workloads.spec import (
    FANOUT_PANELS,
    Check,
    Option,
    RoundPlan,
    StoreAccess,
    WorkloadSpec,
    combine_failures,
)

if TYPE_CHECKING:
    import numpy as np

#: Bounds of the parameters (the function validates the same ones). The seed mode's bound
#: keeps the driver's single-node reference small; the staged mode's is the memory below.
MIN_N, MAX_N = 16, 4096
MAX_N_STAGED = 65_536
#: What a staged function may hold in panels and its C block: 8 GiB of a 10 GB function.
STAGED_BYTES_MAX = 8 * 2**30
#: Blocks of C a staged job's combine step recomputes from the panels and compares.
CHECK_BLOCKS = 4
MIN_BLOCK = 8
#: Largest max|C - A·B| / max|A·B| accepted: float64 sums of N products differ from another
#: summation order by about N·eps (1e-12 at N = 4096); a wrong block is off by O(1).
MAX_REL_ERROR = 1e-9


def check_shape(n: int, block: int, max_n: int = MAX_N) -> int:
    """Blocks per side of C; ``ValueError`` naming the parameter when N and block don't fit."""
    if not MIN_N <= n <= max_n:
        raise ValueError(f"n must be between {MIN_N} and {max_n}, got {n}")
    if not MIN_BLOCK <= block <= n or n % block:
        raise ValueError(f"block must divide n={n} and be at least {MIN_BLOCK}, got {block}")
    return n // block


def a_rows(seed: int, i: int, block: int, n: int) -> np.ndarray:
    """Row-block ``i`` of A (``block x n``), from its own seeded generator."""
    import numpy as np

    return np.random.default_rng([seed, 0, i]).standard_normal((block, n))


def b_cols(seed: int, j: int, block: int, n: int) -> np.ndarray:
    """Column-block ``j`` of B (``n x block``), from its own seeded generator."""
    import numpy as np

    return np.random.default_rng([seed, 1, j]).standard_normal((n, block))


@lru_cache(maxsize=2)
def reference(n: int, block: int, seed: int) -> np.ndarray:
    """The single-node product A·B (cached: every batch of a run checks against it)."""
    import numpy as np

    nb = check_shape(n, block)
    a = np.vstack([a_rows(seed, i, block, n) for i in range(nb)])
    b = np.hstack([b_cols(seed, j, block, n) for j in range(nb)])
    return a @ b


def encode_block(values: np.ndarray) -> str:
    """A float64 block as base64 of its little-endian bytes (exact)."""
    return base64.b64encode(values.astype("<f8").tobytes()).decode("ascii")


def decode_block(text: str, block: int) -> np.ndarray:
    """The inverse of :func:`encode_block`; ``ValueError`` if the size is wrong."""
    import numpy as np

    raw = base64.b64decode(text, validate=True)
    if len(raw) != 8 * block * block:
        raise ValueError(f"a {block}x{block} block has {8 * block * block} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype="<f8").reshape(block, block)


def staged_bytes(n: int, block: int) -> int:
    """Bytes a staged compute function holds: a row-panel of A, a column-panel of B, a block
    of C (and the panel being read)."""
    return 8 * (3 * block * n + block * block)


def check_staged(n: int, block: int) -> int:
    """:func:`check_shape` for the staged mode, and the function's memory bound."""
    nb = check_shape(n, block, MAX_N_STAGED)
    if staged_bytes(n, block) > STAGED_BYTES_MAX:
        raise ValueError(
            f"n={n} in {block}-blocks needs {staged_bytes(n, block) / 2**30:.1f} GiB a function "
            f"(at most {STAGED_BYTES_MAX / 2**30:.0f} GiB): use smaller blocks"
        )
    return nb


def plan_rounds(params: Mapping[str, Any], workers: int) -> int:
    """Staged: stage the panels, then compute (0: the seed mode is a plain batch)."""
    if not params.get("staged"):
        return 0
    nb = check_staged(int(params["n"]), int(params["block"]))
    if workers > nb * nb:
        raise ValueError(f"matmul: {workers} functions for {nb * nb} blocks of C")
    return 2


def plan_requests(
    params: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Round 0 stages a share of the 2·(N/block) panels a function; round 1 computes a
    range of the blocks of C a function, then the combine step checks C."""
    from serverless_hpc.ranges import split_ranges

    base = {k: v for k, v in params.items() if k not in ("start", "end")}
    nb = check_staged(int(base["n"]), int(base["block"]))
    phase, total = ("stage", 2 * nb) if rnd == 0 else ("compute", nb * nb)
    ranges = split_ranges(total, min(workers, total))
    common = {**base, "round": rnd, "workers": workers, "phase": phase}
    out = [{**common, "worker": i, "start": r.start, "end": r.end} for i, r in enumerate(ranges)]
    return out, ({**base, "round": rnd, "workers": workers, "phase": "verify"} if rnd else None)


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Assemble C from every shard's blocks and compare it with the single-node product
    (the staged mode: the combine step's check, as it reported it)."""
    import numpy as np

    if len(results) == 1 and results[0].get("phase") == "verify":
        keys = ("n", "block", "max_rel_error", "checked_blocks", "of_blocks", "staged")
        return {k: results[0][k] for k in keys if k in results[0]}
    first = results[0]
    n, block, seed = int(first["n"]), int(first["block"]), int(first["seed"])
    nb = check_shape(n, block)
    c = np.full((n, n), np.nan)
    seen: set[int] = set()
    for r in results:
        if (int(r["n"]), int(r["block"]), int(r["seed"])) != (n, block, seed):
            raise ValueError("shards disagree on n, block or seed")
        for item in r["blocks"]:
            k = int(item["k"])
            if k in seen or not 0 <= k < nb * nb:
                raise ValueError(f"block {k} is duplicated or out of range")
            seen.add(k)
            i, j = divmod(k, nb)
            c[i * block : (i + 1) * block, j * block : (j + 1) * block] = decode_block(
                item["data"], block
            )
    if len(seen) != nb * nb:
        raise ValueError(f"{nb * nb - len(seen)} of {nb * nb} blocks of C are missing")
    ref = reference(n, block, seed)
    rel = float(np.max(np.abs(c - ref)) / np.max(np.abs(ref)))
    flops = sum(float(r["flops"]) for r in results)
    seconds = sum(float(r["compute_s"]) for r in results)
    return {
        "n": n,
        "block": block,
        "max_rel_error": rel,
        "gflops_per_function": flops / seconds / 1e9 if seconds > 0 else None,
    }


def check(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every batch's assembled C must match the single-node product within the bound."""
    errors = [b["max_rel_error"] for b in batches if b.get("max_rel_error") is not None]
    out: list[Check] = []
    if errors:
        out.append(
            Check(
                f"{SPEC.name}: C assembled from the blocks equals the single-node product",
                max(errors) <= MAX_REL_ERROR,
                f"max relative error {max(errors):.2e} over {len(errors)} batches "
                f"(bound {MAX_REL_ERROR:g})",
            )
        )
    out += combine_failures(SPEC.name, batches, "blocks assemble into C")
    return out


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """Records keep the figures, not the blocks' data."""
    return {k: v for k, v in result.items() if k != "blocks"}


def _size(params: Mapping[str, Any]) -> int:
    n, block = int(params["n"]), int(params["block"])
    nb = check_staged(n, block) if params.get("staged") else check_shape(n, block)
    return nb * nb


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="dense C = A·B in float64, one function per range of blocks of C (numpy BLAS)",
    function_module=f"{__name__}.function",
    memory_mb=2048,
    timeout_s=60.0,
    order=40,
    default=False,
    plan_params={"n": 512, "block": 128, "seed": 7},
    options=(
        Option("n", int, "matrix size N (staged: up to the larger bound)", MIN_N, MAX_N_STAGED),
        Option("block", int, "block size (divides N)", MIN_BLOCK, MAX_N_STAGED),
        Option("seed", int, "seed of A and B", 0, 2**31 - 1),
        Option("staged", bool, "A and B as panels in the store, C written back, in rounds"),
    ),
    input_size=_size,
    combine=combine,
    combine_needs_all=True,
    check=check,
    compact=compact,
    panels=FANOUT_PANELS,
    store=StoreAccess.SCRATCH,
    rounds=RoundPlan(rounds=plan_rounds, requests=plan_requests),
)
