"""A run directory as the report sees it: records, batches, run.json, and what was wrong with them.

Bad lines (garbage, a wrong shape, NaN) are skipped and counted with their line numbers, so
a report can always be rebuilt from the good records; a run that was stopped, killed or
left records unwritten is said to be incomplete, with the reason.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from serverless_hpc.rundir import (
    BATCH_LINE,
    BATCHES,
    RECORDS,
    RUN_META,
    BadLine,
    iter_record_rows,
    paths,
    read_jsonl,
    read_run_meta,
    record_row,
)

T = TypeVar("T")
#: A summary row's key: target, workload, shards, mode, memory_mb (0: not reported).
RowKey = tuple[str, str, int, str, int]
#: A job's key: its row and its repeat (one batch).
JobKey = tuple[RowKey, int]


def row_key(r: Mapping[str, Any]) -> RowKey:
    """The summary row a record or batch belongs to (a memory sweep's sizes are rows apart)."""
    memory = r.get("memory_mb")
    return (
        str(r["target"]),
        str(r["workload"]),
        int(r["shards"]),
        str(r["mode"]),
        int(memory) if isinstance(memory, int | float) else 0,
    )


@dataclass(frozen=True, slots=True)
class RowIndex:
    """A run's records and batches grouped by summary row and by job, in one pass.

    Each part of a report reads records per row or per job; grouping once, here, is what
    keeps a report of a million records from keying every record a dozen times.
    """

    #: Per row, its records in the order they were read.
    records: dict[RowKey, list[Mapping[str, Any]]]
    #: Per job (row and repeat), its records.
    jobs: dict[JobKey, list[Mapping[str, Any]]]
    #: Per row, its batches in the order they were read.
    batches: dict[RowKey, list[dict[str, Any]]]
    #: Per job, its batch (the last line, when a repeat has more than one).
    batch_of: dict[JobKey, dict[str, Any]]

    @classmethod
    def of(
        cls, records: Sequence[Mapping[str, Any]], batches: Sequence[dict[str, Any]]
    ) -> RowIndex:
        """Group ``records`` and ``batches`` (each keyed once)."""
        by_row: dict[RowKey, list[Mapping[str, Any]]] = defaultdict(list)
        jobs: dict[JobKey, list[Mapping[str, Any]]] = defaultdict(list)
        for r in records:
            key = row_key(r)
            by_row[key].append(r)
            jobs[(key, int(r.get("repeat") or 0))].append(r)
        by_batch_row: dict[RowKey, list[dict[str, Any]]] = defaultdict(list)
        batch_of: dict[JobKey, dict[str, Any]] = {}
        for b in batches:
            key = row_key(b)
            by_batch_row[key].append(b)
            batch_of[(key, int(b.get("repeat") or 0))] = b
        return cls(dict(by_row), dict(jobs), dict(by_batch_row), batch_of)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two memo keys name the same inputs: the same objects, or equal plain values."""
    return len(a) == len(b) and all(
        x is y or (type(x) is type(y) and isinstance(x, int | float | str | tuple) and x == y)
        for x, y in zip(a, b, strict=True)
    )


@dataclass(slots=True)
class RunData:
    """Everything a report is made of."""

    out: Path
    records: list[dict[str, Any]]
    batches: list[dict[str, Any]]
    meta: dict[str, Any]
    #: File name -> the lines of it that were skipped.
    bad_lines: dict[str, list[BadLine]] = field(default_factory=dict)
    #: Why the run is incomplete (empty: it finished and every planned record is there).
    incomplete: list[str] = field(default_factory=list)
    #: What :meth:`memo` has worked out, by name: (its inputs, its value).
    _memo: dict[str, tuple[tuple[Any, ...], Any]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def memo(self, name: str, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, worked out once for ``name`` while its ``inputs`` (compared by
        identity, or by value for plain values) and this run's record and batch lists (the
        same lists, of the same length) stay the same: a report asks the same question of a
        run from several of its parts (the verdict, its table, the chart)."""
        key = (self.records, len(self.records), self.batches, len(self.batches), *inputs)
        hit = self._memo.get(name)
        if hit is not None and _same(hit[0], key):
            value: T = hit[1]
            return value
        value = compute()
        self._memo[name] = (key, value)
        return value

    def index(self) -> RowIndex:
        """The records and batches grouped by row and job (:class:`RowIndex`), made once."""
        return self.memo("index", (), lambda: RowIndex.of(self.records, self.batches))

    @property
    def run_id(self) -> str:
        """The run's id from run.json, else the first record's, else the directory name."""
        rid = self.meta.get("run_id") or (self.records[0].get("run_id") if self.records else None)
        return str(rid or self.out.name)


def bad_line_notes(data: RunData) -> list[str]:
    """One sentence per file with skipped lines, naming them (the first 20 of each)."""
    notes = []
    for name, bad in sorted(data.bad_lines.items()):
        if not bad:
            continue
        shown = "; ".join(f"line {b.line}: {b.reason}" for b in bad[:20])
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        notes.append(f"{name}: {len(bad)} bad line(s) skipped: {shown}{more}")
    return notes


def _read_meta(out: Path, bad: dict[str, list[BadLine]]) -> dict[str, Any]:
    meta = read_run_meta(out)
    if meta.problems:
        bad[RUN_META] = [BadLine(1, f"{p}; run settings unknown") for p in meta.problems]
    return meta.data


def _incomplete(meta: dict[str, Any], records: int) -> list[str]:
    if not meta:
        return [f"{RUN_META} is missing or unreadable: whether the run finished is unknown"]
    out = []
    aborted = meta.get("aborted")
    if aborted:
        by = aborted.get("by") if isinstance(aborted, dict) else None
        out.append(f"the run was aborted ({by or 'stopped'}) before its plan was done")
    elif not meta.get("finished"):
        out.append(
            f"the run never finished (killed, or still running): {RUN_META} has no 'finished'"
        )
    planned = meta.get("planned_invocations")
    if isinstance(planned, int) and not isinstance(planned, bool) and records < planned:
        skipped = meta.get("skipped") or []
        why = " (some planned batches were skipped: see below)" if skipped else ""
        out.append(f"{planned - records} of {planned} planned invocations have no record{why}")
    return out


#: Records of one workload and memory size whose result size is measured when a run from
#: before ``result_bytes`` is read (serialising every result again would cost as much as
#: reading the run).
RESULT_SAMPLE: Final = 50
#: Batch fields whose text repeats across a run's batches (interned as they are read).
_SHARED_BATCH_TEXT: Final = ("run_id", "target", "workload", "mode", "reduced_sha256")


def load_run(out: Path) -> RunData:
    """Read a run directory; FileNotFoundError when it holds no records.jsonl.

    The records are streamed and each is kept as a :func:`~serverless_hpc.rundir.record_row`
    (the fields the report reads, no result payload), so memory grows with the records at a
    few hundred bytes each, not at a parsed line's few KB.
    """
    files = paths(out)
    if not files.records.is_file():
        raise FileNotFoundError(f"{out}: no {RECORDS} (is this a run directory?)")
    bad: dict[str, list[BadLine]] = {RECORDS: []}
    rows: list[dict[str, Any]] = []
    sized: dict[tuple[Any, Any], int] = {}

    def row(line: dict[str, Any]) -> dict[str, Any]:
        if "result_bytes" not in line and isinstance(line.get("result"), dict):
            key = (line.get("workload"), line.get("memory_mb"))
            if sized.get(key, 0) < RESULT_SAMPLE:
                sized[key] = sized.get(key, 0) + 1
                line["result_bytes"] = len(json.dumps(line["result"]))
        return record_row(line)

    for item in iter_record_rows(files.records, row):
        if isinstance(item, BadLine):
            bad[RECORDS].append(item)
        else:
            rows.append(item)
    batches: list[dict[str, Any]] = []
    if files.batches.is_file():
        read = read_jsonl(files.batches, BATCH_LINE)
        bad[BATCHES] = read.bad
        for b in read.rows:
            if "reduce_error" in b and "combine_error" not in b:  # runs before the rename
                b["combine_error"] = b.pop("reduce_error")
            for key in _SHARED_BATCH_TEXT:  # the same few values on every line: kept once
                value = b.get(key)
                if type(value) is str:
                    b[key] = sys.intern(value)
            batches.append(b)
    meta = _read_meta(out, bad)
    return RunData(
        out=out,
        records=rows,
        batches=batches,
        meta=meta,
        bad_lines={k: v for k, v in bad.items() if v},
        incomplete=_incomplete(meta, len(rows)),
    )
