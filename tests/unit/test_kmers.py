"""kmers: M mappers shuffle M x R partitions through the store; the merge equals one count."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads import kmers
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.kmers import function
from serverless_hpc.workloads.roundio import run_inline

SMALL = {"genome_len": 3000, "reads": 2500, "read_len": 40, "k": 11, "error_rate": 0.02}


def _naive(reads: np.ndarray, k: int) -> Counter[str]:
    """Canonical k-mers counted as strings, one by one."""
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    out: Counter[str] = Counter()
    for row in reads:
        s = "".join("ACGT"[b] for b in row)
        for i in range(len(s) - k + 1):
            w = s[i : i + k]
            rc = "".join(comp[c] for c in reversed(w))
            out[min(w, rc)] += 1
    return out


def _decode(code: int, k: int) -> str:
    return "".join("ACGT"[(code >> (2 * (k - 1 - j))) & 3] for j in range(k))


def test_the_packed_canonical_count_is_the_string_count() -> None:
    p = function.KmersParams(**SMALL, worker=0)
    reads = function.synthetic_reads(p, 0, 60)
    counts = function.count_kmers(reads, 11)
    packed = {_decode(int(c), 11): int(n) for c, n in zip(counts[0], counts[1], strict=True)}
    assert packed == dict(_naive(reads, 11))


def test_a_split_of_the_reads_is_the_same_reads() -> None:
    p = function.KmersParams(**SMALL, worker=0)
    whole = function.synthetic_reads(p, 0, 2500)
    parts = [function.synthetic_reads(p, a, b) for a, b in ((0, 1), (1, 1030), (1030, 2500))]
    assert np.array_equal(np.concatenate(parts), whole)
    assert whole.shape == (2500, 40) and whole.max() <= 3


def test_reads_are_genome_substrings_changed_at_the_error_rate() -> None:
    def found(error_rate: float) -> float:
        p = function.KmersParams(**{**SMALL, "error_rate": error_rate}, worker=0)
        ref = "".join("ACGT"[b] for b in function.genome(p.seed, p.genome_len))
        reads = function.synthetic_reads(p, 0, 300)
        return sum("".join("ACGT"[b] for b in r) in ref for r in reads) / len(reads)

    # error-free reads all occur in the genome; at 2% a 40-base read is intact 0.98**40 = 45%
    assert found(0.0) == 1.0
    assert 0.3 < found(0.02) < 0.6


@pytest.mark.parametrize(("mappers", "reducers"), [(1, 1), (4, 4), (3, 5), (7, 2)])
def test_the_shuffle_equals_a_single_process_count(
    tmp_path: Path, mappers: int, reducers: int
) -> None:
    # GIVEN synthetic reads counted by `mappers` functions into `reducers` partitions each
    ctx = Context(store_uri=str(tmp_path / "store"))
    calls = run_inline(kmers.SPEC, {**SMALL, "reducers": reducers, "job": "j"}, mappers, ctx)
    # THEN stage and map ran M times, reduce R times, then one check
    roles = [c.role for c in calls]
    assert roles == ["stage"] * mappers + ["map"] * mappers + ["reduce"] * reducers + ["combine"]
    # AND every mapper wrote one partition per reducer: M x R shuffle objects
    root = tmp_path / "store" / "scratch" / "kmers" / "j" / "map"
    assert len([p for p in root.rglob("*") if p.is_file()]) == mappers * reducers
    final = calls[-1].output.result
    assert final["matches_single_process"] is True and final["misplaced_kmers"] == 0
    # AND the counts are exactly a single-process count of the same reads
    p = function.KmersParams(**SMALL, worker=0)
    single = function.count_kmers(function.synthetic_reads(p, 0, SMALL["reads"]), SMALL["k"])
    assert final["counts_sha256"] == function.counts_digest(single)
    assert final["total_kmers"] == SMALL["reads"] * (SMALL["read_len"] - SMALL["k"] + 1)
    batch = kmers.combine([final])
    assert batch["input"] == "synthetic" and batch["mappers"] == mappers


def test_a_wrong_partition_fails_the_check(tmp_path: Path) -> None:
    # GIVEN a finished 2 x 2 job whose reducer 1 output was replaced by reducer 0's
    ctx = Context(store_uri=str(tmp_path / "store"))
    run_inline(kmers.SPEC, {**SMALL, "job": "j"}, 2, ctx)
    red = tmp_path / "store" / "scratch" / "kmers" / "j" / "reduce"
    (red / "r1").write_bytes((red / "r0").read_bytes())
    verify = {**SMALL, "job": "j", "phase": "verify", "mappers": 2, "reducers": 2}
    out = function.run(verify, ctx).result
    # THEN the check says so
    assert out["matches_single_process"] is False and out["misplaced_kmers"] > 0
    (check, *_) = kmers.check([kmers.combine([out])])
    assert not check.ok


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"k": 32}, "params.k"),
        ({"read_len": 10, "k": 11}, "k 11 exceeds"),
        ({"worker": None}, "worker must be"),
        ({"job": "a//b"}, "params.job"),
    ],
)
def test_bad_input_names_the_field(tmp_path: Path, params: dict, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        function.run({"worker": 0, **params}, Context(store_uri=str(tmp_path)))
