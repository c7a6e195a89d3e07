"""``matmul``: C = A·B for NxN float64 matrices, one function per set of blocks of C.

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
    WorkloadSpec,
    combine_failures,
)

if TYPE_CHECKING:
    import numpy as np

#: Bounds of the parameters (the function validates the same ones).
MIN_N, MAX_N = 16, 4096
MIN_BLOCK = 8
#: Largest max|C - A·B| / max|A·B| accepted: float64 sums of N products differ from another
#: summation order by about N·eps (1e-12 at N = 4096); a wrong block is off by O(1).
MAX_REL_ERROR = 1e-9


def check_shape(n: int, block: int) -> int:
    """Blocks per side of C; ``ValueError`` naming the parameter when N and block don't fit."""
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"n must be between {MIN_N} and {MAX_N}, got {n}")
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


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Assemble C from every shard's blocks and compare it with the single-node product."""
    import numpy as np

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
    nb = check_shape(int(params["n"]), int(params["block"]))
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
        Option("n", int, "matrix size N", MIN_N, MAX_N),
        Option("block", int, "block size (divides N)", MIN_BLOCK, MAX_N),
        Option("seed", int, "seed of A and B", 0, 2**31 - 1),
    ),
    input_size=_size,
    combine=combine,
    combine_needs_all=True,
    check=check,
    compact=compact,
    panels=FANOUT_PANELS,
)
