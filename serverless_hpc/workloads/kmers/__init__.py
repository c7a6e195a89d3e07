"""``kmers``: k-mer counting over sequencing reads, the all-to-all shuffle of genome pipelines.

The input is **synthetic**: reads of ``read_len`` bases sampled uniformly from a seeded random
genome of ``genome_len`` bases, each base replaced by another at random with probability
``error_rate`` (a sequencer's substitution errors; no insertions or deletions). Reads come in
fixed chunks, each from its own seeded generator, so any split of them is the same reads.

The job runs in three rounds over M mappers and R reducers (M = the batch's fan-out; R =
``reducers``, default M):

0. **stage**: M functions generate their share of the synthetic reads once into the store
   (standing in for reads that arrived there; recorded, and apart from the shuffle).
1. **map**: each mapper counts the canonical k-mers (a k-mer and its reverse complement
   count as one, as in genome assemblers) of its reads and writes one partition per
   reducer, by a hash of the k-mer: M x R objects.
2. **reduce**: each reducer reads its partition from every mapper and merges the counts.

The combine step after the reduce reads every reducer's counts and checks them against a
single-process count of the same reads (``matches_single_process``), and reports the number
of distinct k-mers, the total, and a sha256 of the sorted counts, which every fan-out must
reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from serverless_hpc.workloads.spec import (
    FANOUT_PANELS,
    Check,
    Option,
    RoundPlan,
    StoreAccess,
    WorkloadSpec,
    combine_failures,
)

#: Reads per generator chunk: a share of the reads is made of whole chunks' slices.
CHUNK: Final = 1024
MAX_K: Final = 31  #: k-mers are packed two bits a base into 64-bit integers
#: Base parameters: small, so a test run takes seconds.
DEFAULTS: Final = {
    "genome_len": 50_000,
    "reads": 4_000,
    "read_len": 100,
    "k": 21,
    "error_rate": 0.01,
    "seed": 5,
}
#: The rounds, in order: the function's ``phase`` of each.
PHASES: Final = ("stage", "map", "reduce")


def reducers_of(params: Mapping[str, Any], workers: int) -> int:
    """R: ``reducers`` if given, else the mapper count."""
    r = params.get("reducers")
    return workers if r is None else int(r)


def plan_rounds(params: Mapping[str, Any], workers: int) -> int:
    """Stage, map, reduce."""
    if int(params["reads"]) < workers:
        raise ValueError(f"kmers: {workers} mappers need at least as many reads")
    return len(PHASES)


def plan_requests(
    params: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Round ``rnd``'s requests: M stagers, M mappers, then R reducers and the check."""
    base = {k: v for k, v in params.items() if k not in ("start", "end")}
    base.update(mappers=workers, reducers=reducers_of(base, workers), round=rnd)
    phase = PHASES[rnd]
    count = base["reducers"] if phase == "reduce" else workers
    out = [{**base, "phase": phase, "worker": i, "workers": count} for i in range(count)]
    combine = {**base, "phase": "verify", "workers": 1} if phase == "reduce" else None
    return out, combine


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The batch line: the merged counts' summary and whether one process counts the same."""
    final = [r for r in results if "counts_sha256" in r]
    if len(final) != 1:
        raise ValueError(f"expected one verified count, got {len(final)}")
    r = final[0]
    keys = ("mappers", "reducers", "k", "reads", "read_len", "genome_len", "error_rate", "seed")
    out = {k: r[k] for k in keys if k in r}
    out.update(
        distinct_kmers=int(r["distinct_kmers"]),
        total_kmers=int(r["total_kmers"]),
        counts_sha256=str(r["counts_sha256"]),
        matches_single_process=bool(r["matches_single_process"]),
        input="synthetic",
    )
    return out


def check(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every batch's merged counts equal the single-process count, and all fan-outs of one
    input agree on them."""
    out: list[Check] = []
    compared = [b for b in batches if "matches_single_process" in b]
    if compared:
        good = sum(1 for b in compared if b["matches_single_process"])
        out.append(
            Check(
                f"{SPEC.name}: merged counts equal a single-process count (synthetic reads)",
                good == len(compared),
                f"{good} of {len(compared)} batches",
            )
        )
        digests: dict[tuple[Any, ...], set[str]] = {}
        for b in compared:
            key = tuple(
                b.get(k) for k in ("k", "reads", "read_len", "genome_len", "error_rate", "seed")
            )
            digests.setdefault(key, set()).add(str(b["counts_sha256"]))
        split = sum(1 for v in digests.values() if len(v) > 1)
        out.append(
            Check(
                f"{SPEC.name}: every M x R gives the same counts",
                split == 0,
                f"{len(digests)} input(s), {split} with differing counts",
            )
        )
    out += combine_failures(SPEC.name, batches, "counts were merged")
    return out


def _reads(params: Mapping[str, Any]) -> int:
    return int(params["reads"])


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="k-mer counting of synthetic reads: mappers shuffle M x R partitions through the "
    "store to reducers",
    function_module=f"{__name__}.function",
    store=StoreAccess.SCRATCH,
    memory_mb=2048,
    timeout_s=300.0,
    order=61,
    default=False,
    plan_params=DEFAULTS,
    options=(
        Option("genome_len", int, "bases of the synthetic genome", 2, 10**9),
        Option("reads", int, "synthetic reads", 1, 10**8),
        Option("read_len", int, "bases a read", 1, 100_000),
        Option("k", int, "k-mer length", 1, MAX_K),
        Option("error_rate", float, "chance a read's base is substituted", 0.0, 0.75),
        Option("seed", int, "seed of the genome and the reads", 0, 2**63 - 1),
        Option("reducers", int, "reducers R (default: the mappers, M)", 1, 1000, nullable=True),
    ),
    input_size=_reads,
    combine=combine,
    combine_needs_all=True,
    check=check,
    panels=FANOUT_PANELS,
    rounds=RoundPlan(rounds=plan_rounds, requests=plan_requests),
)
