"""The run directory's JSON-lines files: the record writer and the typed, streaming readers.

Writing (group commit): each record is written whole and flushed to the kernel the moment its
invocation completes, so a killed driver (``kill -9``, a crash) loses none; ``fsync`` runs at
most every :data:`SYNC_INTERVAL_S` (and at every batch's end and on close), so a machine that
loses power loses at most the last 100 ms, and never half a line. Reading: every line is
checked against its schema (:data:`~serverless_hpc.rundir.record.RECORD_SCHEMA`,
:data:`BATCH_SCHEMA`); a torn line or a field of the wrong type is skipped and named, never
fatal. :func:`iter_jsonl` streams, so a reader keeps only what it uses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from serverless_hpc.rundir.decode import decode_line, decode_report_row, line_checker
from serverless_hpc.rundir.record import RECORD_REQUIRED, RECORD_SCHEMA, InvocationRecord
from serverless_hpc.safeio import open_regular

log = logging.getLogger(__name__)

#: Longest a written record may wait for its fsync, seconds.
SYNC_INTERVAL_S: Final = 0.1


class RecordWriter:
    """Appends records to a JSONL file, thread-safely, with group commit (see the module)."""

    def __init__(self, path: Path, *, sync_interval_s: float = SYNC_INTERVAL_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        self._interval = sync_interval_s
        self._error: OSError | None = None
        self.count = 0
        self.syncs = 0
        self._syncer = threading.Thread(target=self._sync_loop, name="records-sync", daemon=True)
        self._syncer.start()

    def write(self, record: InvocationRecord) -> None:
        """Append one record, whole, and hand it to the kernel before returning.

        ``OSError`` when the file cannot be written, or when an earlier fsync failed (the
        disk filled up): the run stops rather than go on recording into a failing file.
        """
        line = record.to_json() + "\n"
        with self._lock:
            if self._error is not None:
                raise self._error
            self._fh.write(line)
            self._fh.flush()
            self._dirty = True
            self.count += 1

    def sync(self) -> None:
        """Force what was written to disk now (at a batch's end)."""
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        if not self._dirty or self._fh.closed:
            return
        try:
            os.fsync(self._fh.fileno())
        except OSError as exc:
            self._error = exc
            raise
        self._dirty = False
        self.syncs += 1

    def _sync_loop(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self.sync()
            except OSError as exc:  # kept: the next write raises it in the run's thread
                log.error("fsync of %s failed: %s", self.path, exc.strerror or exc)  # noqa: TRY400
                return

    def close(self) -> None:
        """Sync and close the file (the sync thread stops)."""
        self._closed.set()
        self._syncer.join(timeout=max(1.0, self._interval * 10))
        with self._lock:
            if self._fh.closed:
                return
            try:
                self._sync_locked()
            finally:
                self._fh.close()


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line of a JSONL file that was skipped, and why (1-based line number)."""

    line: int
    reason: str


@dataclass(slots=True)
class JsonlRead:
    """The good rows of a JSONL file and the lines that were skipped."""

    rows: list[dict[str, Any]]
    bad: list[BadLine]


_NUM: Final = (int, float)
_NONE: Final = (type(None),)

#: The typed fields of a batch line (``batches.jsonl``); the workload's combined result adds
#: its own fields, which its spec reads.
BATCH_SCHEMA: Final[dict[str, tuple[type, ...]]] = {
    "run_id": (str, *_NONE),
    "target": (str,),
    "workload": (str,),
    "memory_mb": (int, *_NONE),
    "oversubscribed": (bool, *_NONE),
    "shards": (int,),
    "max_parallel": (int,),
    "workers": (int,),
    "repeat": (int,),
    "mode": (str,),
    "invocations": (int,),
    "failed": (int,),
    "items": (int,),
    "makespan_ms": (*_NUM, *_NONE),
    "straggler_ratio": (*_NUM, *_NONE),
    "combine_error": (str,),
    "legs": (int,),
    "cost_usd": (*_NUM, *_NONE),
    "billed_ms": (*_NUM, *_NONE),
    "progress": (list,),
}
#: The fields a batch line must carry for the report to use it at all.
BATCH_REQUIRED: Final = frozenset({"target", "workload", "shards", "mode", "failed"})

#: Kept for callers that name the required fields only (field -> types).
RECORD_FIELDS: Final = {k: RECORD_SCHEMA[k] for k in sorted(RECORD_REQUIRED)}
BATCH_FIELDS: Final = {k: BATCH_SCHEMA[k] for k in sorted(BATCH_REQUIRED)}


@dataclass(frozen=True, slots=True)
class Schema:
    """The typed fields of one kind of line, and which of them must be there."""

    fields: Mapping[str, tuple[type, ...]]
    required: Collection[str] = ()
    #: field -> the exact types its JSON value may have (a decoded value's type is one of
    #: int, float, str, bool, NoneType, dict, list; bool is never taken for an int)
    exact: Mapping[str, frozenset[type]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exact", {k: frozenset(t) for k, t in self.fields.items()})


RECORD_LINE: Final = Schema(RECORD_SCHEMA, RECORD_REQUIRED)
BATCH_LINE: Final = Schema(BATCH_SCHEMA, BATCH_REQUIRED)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a record may hold")


#: One decoder for every line (``json.loads`` with a hook builds a new one per call).
#: NaN and Infinity are refused as they are read; a number too large for a float (1e400
#: reads as inf) is refused in a typed field by :func:`_shape_problem` (the writer never
#: writes either).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _shape_problem(row: object, schema: Schema | Mapping[str, tuple[type, ...]]) -> str | None:
    if type(row) is not dict:
        return f"a JSON {type(row).__name__}, not an object"
    schema = _as_schema(schema)
    for key in schema.required:
        if row.get(key) is None:
            return f"field {key!r} missing"
    exact = schema.exact
    for key, value in row.items():
        allowed = exact.get(key)
        if allowed is None:
            continue
        kind = type(value)
        if kind not in allowed:
            names = "/".join("null" if t is type(None) else t.__name__ for t in schema.fields[key])
            return f"field {key!r} is not {names}"
        if kind is float and not math.isfinite(value):
            return f"field {key!r} is not a finite number"
    return None


def _as_schema(schema: Schema | Mapping[str, tuple[type, ...]] | None) -> Schema:
    if isinstance(schema, Schema):
        return schema
    fields = schema or {}
    return Schema(fields, tuple(fields))  # field -> types: every one required


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a file as bytes, with their 1-based numbers (blank: only
    whitespace, Unicode's included)."""
    with open_regular(path) as raw:
        for number, line in enumerate(raw, start=1):
            # a line opening an object is not blank (checked first: no copy of the line)
            if line.startswith(b"{") or (
                line.strip() and (line.isascii() or line.decode("utf-8", "replace").strip())
            ):
                yield number, line


def _checked(number: int, line: bytes, schema: Schema) -> dict[str, Any] | BadLine:
    """The Python check of one line: the row, or why it is bad (the fast path's referee)."""
    try:
        row = _DECODER.decode(line.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = (
            "not JSON"
            if not isinstance(exc, ValueError) or isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        return BadLine(number, reason)
    problem = _shape_problem(row, schema)
    return BadLine(number, problem) if problem else row


def iter_jsonl(
    path: Path, schema: Schema | Mapping[str, tuple[type, ...]] | None = None
) -> Iterator[dict[str, Any] | BadLine]:
    """Each line of a JSONL file, in order: the row, or a :class:`BadLine` saying why not.

    A line is bad when it is not JSON (a torn last line after a crash, garbage), holds NaN or
    Infinity (never written by :class:`RecordWriter`), is not an object, or breaks
    ``schema``. Streaming: nothing is kept between lines. Lines are decoded and checked in C
    (:mod:`.decode`); a line that path refuses is checked again here, which names the problem.
    """
    shape = _as_schema(schema)
    checker = line_checker(shape.fields, shape.required)
    for number, line in _raw_lines(path):
        row = decode_line(line, checker)
        yield row if row is not None else _checked(number, line, shape)


def iter_record_rows(
    path: Path, row: Callable[[dict[str, Any]], dict[str, Any]]
) -> Iterator[dict[str, Any] | BadLine]:
    """Each line of a ``records.jsonl`` as a report row (:func:`~.record.report_row`), or a
    :class:`BadLine`: decoded straight into the row in C where it can be; otherwise checked
    as :func:`iter_jsonl` does and turned into its row by ``row`` (which may, say, measure an
    old record's result before it is dropped)."""
    for number, line in _raw_lines(path):
        fast = decode_report_row(line)
        if fast is not None:
            yield fast
            continue
        checked = _checked(number, line, RECORD_LINE)
        yield checked if isinstance(checked, BadLine) else row(checked)


def read_jsonl(
    path: Path, fields: Schema | Mapping[str, tuple[type, ...]] | None = None
) -> JsonlRead:
    """Every well-formed row of a JSONL file; bad lines are skipped and listed, not fatal.

    One bad line must not cost the run its other records (see :func:`iter_jsonl`).
    """
    rows: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    for item in iter_jsonl(path, fields):
        if isinstance(item, BadLine):
            bad.append(item)
        else:
            rows.append(item)
    return JsonlRead(rows, bad)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The well-formed records of a ``records.jsonl``; bad lines (a torn last line) skipped."""
    return read_jsonl(path, RECORD_LINE).rows


def append_batch(root: Path, line: Mapping[str, Any]) -> None:
    """Append one batch line to ``batches.jsonl`` in ``root`` and force it to disk."""
    from serverless_hpc.rundir.files import paths

    with paths(root).batches.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
