"""A run directory as the report sees it: records, batches, run.json, and what was wrong with them.

Bad lines (garbage, a wrong shape, NaN) are skipped and counted with their line numbers, so
a report can always be rebuilt from the good records; a run that was stopped, killed or
left records unwritten is said to be incomplete, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

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
