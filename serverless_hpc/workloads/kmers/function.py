"""``kmers``' function side: stage synthetic reads, map (count and partition), reduce, verify.

Store layout of a job (under its scratch prefix): ``reads/m<i>`` mapper ``i``'s reads (one
``uint8`` row per read, bases 0-3 for A, C, G, T); ``map/m<i>/r<j>`` mapper ``i``'s counts
for reducer ``j`` (a 2 x n ``uint64`` array: k-mers, counts; sorted by k-mer);
``reduce/r<j>`` reducer ``j``'s merged counts, the same shape.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.ranges import split_ranges
from serverless_hpc.workloads.base import Context, Output, parse_params
from serverless_hpc.workloads.kmers import CHUNK, MAX_K, SPEC
from serverless_hpc.workloads.roundio import RoundIO, RoundParams, with_round_io

if TYPE_CHECKING:
    import numpy as np

#: Multiplier of the partitioning hash (Fibonacci hashing: spreads packed k-mers evenly).
_GOLDEN = 0x9E3779B97F4A7C15


class KmersParams(RoundParams):
    """The synthetic input, k, the shuffle's shape, and this request's phase."""

    genome_len: int = Field(default=50_000, ge=2, le=10**9)
    reads: int = Field(default=4_000, ge=1, le=10**8)
    read_len: int = Field(default=100, ge=1, le=100_000)
    k: int = Field(default=21, ge=1, le=MAX_K)
    error_rate: float = Field(default=0.01, ge=0.0, le=0.75)
    seed: int = Field(default=5, ge=0, le=2**63 - 1)
    mappers: int = Field(default=1, ge=1, le=1000)
    reducers: int | None = Field(default=None, ge=1, le=1000)
    phase: Literal["stage", "map", "reduce", "verify"] = "stage"

    @model_validator(mode="after")
    def _fits(self) -> KmersParams:
        if self.read_len > self.genome_len:
            raise ValueError(f"read_len {self.read_len} exceeds genome_len {self.genome_len}")
        if self.k > self.read_len:
            raise ValueError(f"k {self.k} exceeds read_len {self.read_len}")
        if self.reads < self.mappers:
            raise ValueError(f"{self.mappers} mappers need at least as many reads")
        if self.phase != "verify" and (self.worker is None or self.worker >= self.workers):
            raise ValueError(f"worker must be an index below workers={self.workers}")
        return self

    @property
    def r(self) -> int:
        """The reducer count."""
        return self.reducers or self.mappers


def preload() -> None:
    """Import numpy now, so a cold start's import cost is measured as such."""
    import numpy  # noqa: F401


def genome(seed: int, length: int) -> np.ndarray:
    """The synthetic genome: ``length`` uniform random bases (0-3)."""
    import numpy as np

    return np.random.default_rng([seed, 0]).integers(0, 4, length, dtype=np.uint8)


def read_chunk(p: KmersParams, ref: np.ndarray, c: int) -> np.ndarray:
    """Reads ``[c * CHUNK, ...)`` of the synthetic input, from the chunk's own generator."""
    import numpy as np

    rng = np.random.default_rng([p.seed, 1, c])
    m = min(CHUNK, p.reads - c * CHUNK)
    pos = rng.integers(0, p.genome_len - p.read_len + 1, m)
    reads = ref[pos[:, None] + np.arange(p.read_len)]
    wrong = rng.random((m, p.read_len)) < p.error_rate
    other = (reads + rng.integers(1, 4, (m, p.read_len), dtype=np.uint8)) % 4
    out: np.ndarray = np.where(wrong, other, reads).astype(np.uint8)
    return out


def synthetic_reads(p: KmersParams, start: int, end: int) -> np.ndarray:
    """Reads ``[start, end)`` of the synthetic input (the same reads however it is split)."""
    import numpy as np

    ref = genome(p.seed, p.genome_len)
    chunks = range(start // CHUNK, (end - 1) // CHUNK + 1)
    block = np.concatenate([read_chunk(p, ref, c) for c in chunks])
    offset = chunks.start * CHUNK
    return block[start - offset : end - offset]


def count_kmers(reads: np.ndarray, k: int) -> np.ndarray:
    """The canonical k-mers of ``reads`` and their counts: a sorted 2 x n ``uint64`` array.

    A k-mer is packed two bits a base, first base highest; its canonical form is the smaller
    of it and its reverse complement (complement: 3 - base).
    """
    import numpy as np

    if reads.size == 0:
        return np.zeros((2, 0), dtype=np.uint64)
    width = reads.shape[1] - k + 1
    fwd = np.zeros((reads.shape[0], width), dtype=np.uint64)
    rev = np.zeros_like(fwd)
    two = np.uint64(2)
    for j in range(k):
        base = reads[:, j : j + width].astype(np.uint64)
        fwd <<= two
        fwd |= base
        rev |= (np.uint64(3) - base) << np.uint64(2 * j)
    keys, counts = np.unique(np.minimum(fwd, rev), return_counts=True)
    return np.stack([keys, counts.astype(np.uint64)])


def partition_of(keys: np.ndarray, reducers: int) -> np.ndarray:
    """Which reducer each k-mer goes to (a multiplicative hash, modulo R)."""
    import numpy as np

    mixed = (keys * np.uint64(_GOLDEN)) >> np.uint64(33)
    out: np.ndarray = mixed % np.uint64(reducers)
    return out


def merge_counts(parts: list[np.ndarray]) -> np.ndarray:
    """Sum the counts of equal k-mers over several sorted count arrays."""
    import numpy as np

    both = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    if both.shape[1] == 0:
        return both
    order = np.argsort(both[0], kind="stable")
    keys, counts = both[0][order], both[1][order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.stack([keys[starts], np.add.reduceat(counts, starts)])


def counts_digest(counts: np.ndarray) -> str:
    """sha256 of sorted counts: the k-mers' then the counts' little-endian bytes."""
    h = hashlib.sha256(counts[0].astype("<u8").tobytes())
    h.update(counts[1].astype("<u8").tobytes())
    return h.hexdigest()


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """One stage, map or reduce task, or the check after the reduce."""
    p = parse_params(KmersParams, raw)
    rio = RoundIO.open(ctx, SPEC.name, p.job)
    phase = {"stage": _stage, "map": _map, "reduce": _reduce, "verify": _verify}[p.phase]
    t0 = time.perf_counter()
    result, compute_s = phase(p, rio)
    wall = time.perf_counter() - t0
    io_s = rio.read_s + rio.write_s
    extra = {**rio.timings(), "other_ms": max(0.0, wall - compute_s - io_s) * 1e3}
    out = {
        "phase": p.phase,
        "mappers": p.mappers,
        "reducers": p.r,
        "k": p.k,
        "reads": p.reads,
        "read_len": p.read_len,
        "genome_len": p.genome_len,
        "error_rate": p.error_rate,
        "seed": p.seed,
        "input": "synthetic",
        **result,
    }
    return with_round_io(
        Output(result=out, load_ms=0.0, compute_ms=compute_s * 1e3, extra_timings=extra)
    )


def _share(p: KmersParams) -> tuple[int, int]:
    r = split_ranges(p.reads, p.mappers)[p.worker or 0]
    return r.start, r.end


def _stage(p: KmersParams, rio: RoundIO) -> tuple[dict[str, Any], float]:
    start, end = _share(p)
    t0 = time.perf_counter()
    reads = synthetic_reads(p, start, end)
    gen_s = time.perf_counter() - t0
    rio.put_array(f"reads/m{p.worker}", reads)
    return {"items": end - start}, gen_s


def _map(p: KmersParams, rio: RoundIO) -> tuple[dict[str, Any], float]:
    import numpy as np

    reads = rio.get_array(f"reads/m{p.worker}")
    if reads.dtype != np.uint8 or reads.ndim != 2 or reads.shape[1] != p.read_len:
        raise InvalidRequest(f"reads/m{p.worker}: not {p.read_len}-base uint8 reads")
    t0 = time.perf_counter()
    counts = count_kmers(reads, p.k)
    part = partition_of(counts[0], p.r)
    pieces = [counts[:, part == j] for j in range(p.r)]
    compute_s = time.perf_counter() - t0
    for j, piece in enumerate(pieces):
        rio.put_array(f"map/m{p.worker}/r{j}", piece)
    return {"items": int(reads.shape[0]), "distinct_kmers": int(counts.shape[1])}, compute_s


def _reduce(p: KmersParams, rio: RoundIO) -> tuple[dict[str, Any], float]:
    parts = [rio.get_array(f"map/m{i}/r{p.worker}") for i in range(p.mappers)]
    t0 = time.perf_counter()
    merged = merge_counts(parts)
    compute_s = time.perf_counter() - t0
    rio.put_array(f"reduce/r{p.worker}", merged)
    return {
        "items": int(merged.shape[1]),
        "distinct_kmers": int(merged.shape[1]),
        "total_kmers": int(merged[1].sum()),
    }, compute_s


def _verify(p: KmersParams, rio: RoundIO) -> tuple[dict[str, Any], float]:
    import numpy as np

    parts = [rio.get_array(f"reduce/r{j}") for j in range(p.r)]
    reads = [rio.get_array(f"reads/m{i}") for i in range(p.mappers)]
    t0 = time.perf_counter()
    misplaced = sum(int(np.sum(partition_of(x[0], p.r) != j)) for j, x in enumerate(parts))
    merged = merge_counts(parts)
    single = count_kmers(np.concatenate(reads), p.k)
    same = misplaced == 0 and merged.shape == single.shape and bool(np.array_equal(merged, single))
    return {
        "distinct_kmers": int(merged.shape[1]),
        "total_kmers": int(merged[1].sum()),
        "counts_sha256": counts_digest(merged),
        "misplaced_kmers": misplaced,
        "matches_single_process": same,
    }, time.perf_counter() - t0
