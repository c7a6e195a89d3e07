"""The answer for coupled work: where a job in rounds spends its time, per round.

For every workload that ran in rounds (records with ``round`` and a result's ``round_io``),
per target and fan-out: the rounds a job took, and per round its makespan (first request
sent to last reply received) and the functions' time summed over the round's invocations,
split into compute, store I/O (reads and writes) and overhead (everything else the driver
saw: platform, start-up, request and reply, and what the function did besides computing and
moving data), with the bytes moved, and a job's wall time (first request to last reply).
Data-parallel trainings are left to the training section (their records carry no
``round_io``). :func:`round_parts` gives the same figures per part of a round (its workers,
its combine step) with the store requests, for the model of :mod:`.store_model`.

The report keeps a compact row per record, without results; :func:`from_run` reads the
round figures from the record file itself, streaming, and only when a batch of the run ran
in rounds through the store (its batch line has ``total_store_read_ms``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverless_hpc.report.store_model import Part
from serverless_hpc.rundir import RECORD_LINE, iter_jsonl, paths

#: The record fields a row of this table needs (the rest of a line is dropped as it is read).
_FIELDS = ("workload", "target", "shards", "memory_mb", "mode", "repeat", "round", "role", "ok")
_FIELDS_TIMED = ("t_send", "t_recv", "client_ms")


@dataclass(frozen=True, slots=True)
class CoupledRow:
    """One workload x target x fan-out, averaged over its jobs' rounds."""

    workload: str
    target: str
    shards: int
    jobs: int
    rounds: float  #: rounds a job took (mean over jobs)
    makespan_ms: float  #: a round's wall time (mean over rounds)
    compute_ms: float  #: a round's compute, summed over its invocations (mean over rounds)
    store_ms: float  #: the same for store reads and writes
    overhead_ms: float  #: the same for the rest of each invocation's client-side time
    mb_moved: float  #: MB read plus written in a round (mean over rounds)
    job_ms: float = 0.0  #: a job's wall time, first request sent to last reply (mean over jobs)

    @property
    def store_share(self) -> float | None:
        """Store I/O's share of the functions' time in a round."""
        total = self.compute_ms + self.store_ms + self.overhead_ms
        return self.store_ms / total if total > 0 else None


def _io(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    result = record.get("result")
    io = result.get("round_io") if isinstance(result, Mapping) else None
    return io if isinstance(io, Mapping) else None


def without_request_counts(records: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (workload, target) pairs some of whose records moved bytes through the store but
    carry no store request counts in ``round_io`` (``store_reads``, ``store_writes``: runs
    recorded before they were): a model of their traffic would take them as zero requests."""
    out = set()
    for r in records:
        io = _io(r)
        if io is None or {"store_reads", "store_writes"} <= io.keys():
            continue
        if float(io.get("bytes_read") or 0) + float(io.get("bytes_written") or 0) > 0:
            out.add((str(r.get("workload")), str(r.get("target"))))
    return out


def _job_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        record.get("workload"),
        record.get("target"),
        record.get("shards"),
        record.get("memory_mb"),
        record.get("mode"),
        record.get("repeat"),
    )


def ran_in_rounds(batches: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a batch of the run ran in rounds through the store (else no table)."""
    return any("total_store_read_ms" in b for b in batches)


def slim_records(out: Path) -> Iterator[dict[str, Any]]:
    """The run's records in rounds, each cut to the fields this table reads, streaming;
    unreadable record lines are skipped (the report counts them)."""
    for line in iter_jsonl(paths(out).records, RECORD_LINE):
        if not isinstance(line, dict) or line.get("round") is None:
            continue
        io = _io(line)
        if io is None and line.get("ok"):
            continue  # a round without store figures (a data-parallel training's)
        keep = {k: line.get(k) for k in (*_FIELDS, *_FIELDS_TIMED)}
        keep["result"] = {"round_io": io} if io is not None else None
        yield keep  # a failed invocation is kept: it marks its job incomplete


def from_run(out: Path, batches: Sequence[Mapping[str, Any]]) -> list[CoupledRow]:
    """The table's rows for the run directory ``out`` (none when no batch ran in rounds
    through the store)."""
    return coupled_rows(slim_records(out)) if ran_in_rounds(batches) else []


def _jobs(
    records: Iterable[Mapping[str, Any]], *, complete_only: bool = False
) -> dict[tuple[Any, ...], dict[int, list[Mapping[str, Any]]]]:
    """job -> round -> its successful records in rounds; ``complete_only``: only the jobs
    none of whose invocations failed (a part short of a function is not the part at its
    fan-out)."""
    jobs: dict[tuple[Any, ...], dict[int, list[Mapping[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    failed: set[tuple[Any, ...]] = set()
    for r in records:
        rnd = r.get("round")
        if not isinstance(rnd, int):
            continue
        if not r.get("ok"):
            failed.add(_job_key(r))
        elif _io(r) is not None:
            jobs[_job_key(r)][rnd].append(r)
    if complete_only:
        for key in failed:
            jobs.pop(key, None)
    return jobs


def coupled_rows(records: Iterable[Mapping[str, Any]]) -> list[CoupledRow]:
    """The table's rows, from a run's records (successful invocations in rounds only)."""
    jobs = _jobs(records)
    per_group: dict[tuple[str, str, int], list[dict[int, list[Mapping[str, Any]]]]] = defaultdict(
        list
    )
    for key, rounds in jobs.items():
        per_group[(str(key[0]), str(key[1]), int(key[2] or 0))].append(rounds)
    out = []
    for (workload, target, shards), group in sorted(per_group.items()):
        figures = [_round_figures(recs) for rounds in group for recs in rounds.values()]
        out.append(
            CoupledRow(
                workload=workload,
                target=target,
                shards=shards,
                jobs=len(group),
                rounds=statistics.fmean(len(rounds) for rounds in group),
                makespan_ms=statistics.fmean(f[0] for f in figures),
                compute_ms=statistics.fmean(f[1] for f in figures),
                store_ms=statistics.fmean(f[2] for f in figures),
                overhead_ms=statistics.fmean(f[3] for f in figures),
                mb_moved=statistics.fmean(f[4] for f in figures) / 1e6,
                job_ms=statistics.fmean(_job_wall_ms(rounds) for rounds in group),
            )
        )
    return out


def _job_wall_ms(rounds: Mapping[int, Sequence[Mapping[str, Any]]]) -> float:
    """A job's wall time: its first request sent to its last reply received."""
    recs = [r for recs in rounds.values() for r in recs]
    return (max(r["t_recv"] for r in recs) - min(r["t_send"] for r in recs)) * 1e3


def round_parts(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, int], list[Part]]:
    """Per workload, target and fan-out: each part of a job's rounds (a round's invocations
    of one role: its workers, its combine step) with its totals over its invocations:
    compute, bytes and store requests (means over the jobs none of whose invocations
    failed)."""
    per_group: dict[tuple[str, str, int], dict[tuple[int, str], list[Part]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for key, rounds in _jobs(records, complete_only=True).items():
        group = per_group[(str(key[0]), str(key[1]), int(key[2] or 0))]
        for rnd, recs in rounds.items():
            by_role: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
            for r in recs:
                by_role[str(r.get("role") or "worker")].append(r)
            for role, these in by_role.items():
                group[(rnd, role)].append(_part(rnd, role, these))
    return {
        key: [_mean_part(parts) for _, parts in sorted(group.items())]
        for key, group in sorted(per_group.items())
    }


def _part(rnd: int, role: str, recs: Sequence[Mapping[str, Any]]) -> Part:
    def total(name: str) -> float:
        return sum(float((_io(r) or {}).get(name, 0.0)) for r in recs)

    return Part(
        round=rnd,
        role=role,
        functions=len(recs),
        compute_ms=total("compute_ms"),
        bytes_read=total("bytes_read"),
        bytes_written=total("bytes_written"),
        reads=total("store_reads"),
        writes=total("store_writes"),
    )


def _mean_part(parts: Sequence[Part]) -> Part:
    first = parts[0]
    return Part(
        round=first.round,
        role=first.role,
        functions=round(statistics.fmean(p.functions for p in parts)),
        compute_ms=statistics.fmean(p.compute_ms for p in parts),
        bytes_read=statistics.fmean(p.bytes_read for p in parts),
        bytes_written=statistics.fmean(p.bytes_written for p in parts),
        reads=statistics.fmean(p.reads for p in parts),
        writes=statistics.fmean(p.writes for p in parts),
    )


def _round_figures(recs: Sequence[Mapping[str, Any]]) -> tuple[float, float, float, float, float]:
    """(makespan, compute, store, overhead, bytes) of one round's invocations."""
    makespan = (max(r["t_recv"] for r in recs) - min(r["t_send"] for r in recs)) * 1e3
    compute = store = overhead = moved = 0.0
    for r in recs:
        io = _io(r) or {}
        c = float(io.get("compute_ms", 0.0))
        s = float(io.get("store_read_ms", 0.0)) + float(io.get("store_write_ms", 0.0))
        compute += c
        store += s
        overhead += max(0.0, float(r.get("client_ms") or 0.0) - c - s)
        moved += float(io.get("bytes_read", 0.0)) + float(io.get("bytes_written", 0.0))
    return makespan, compute, store, overhead, moved


def table_text(rows: Sequence[CoupledRow]) -> str:
    """The rows as a plain-text table (empty when nothing ran in rounds)."""
    if not rows:
        return ""
    head = (
        f"{'workload':<10} {'target':<12} {'fan-out':>7} {'rounds':>6} {'round ms':>9} "
        f"{'compute':>9} {'store':>9} {'overhead':>9} {'store %':>7} {'MB/round':>9}"
    )
    lines = ["coupled work, per round (functions' time summed over a round's invocations)", head]
    for r in rows:
        share = r.store_share
        lines.append(
            f"{r.workload:<10} {r.target:<12} {r.shards:>7} {r.rounds:>6.1f} "
            f"{r.makespan_ms:>9.1f} {r.compute_ms:>9.1f} {r.store_ms:>9.1f} "
            f"{r.overhead_ms:>9.1f} {'' if share is None else f'{share:.0%}':>7} "
            f"{r.mb_moved:>9.2f}"
        )
    return "\n".join(lines)
