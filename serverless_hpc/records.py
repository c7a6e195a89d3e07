"""The invocation record: one JSON line per invocation, appended the moment it completes.

Each line is flushed and fsynced before the next invocation's record, so a crash or a
Ctrl-C keeps every finished invocation. The report reads records only; it never needs to
know which target produced them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from serverless_hpc.host import machine_memory_mb
from serverless_hpc.invocation import InvocationRecord

#: Packages whose versions are recorded with every result (when installed).
_TRACKED_PACKAGES = ("serverless-hpc", "numpy", "ai-edge-litert", "tensorflow-cpu", "boto3")


def environment(target_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The driver's environment: Python, package versions, CPU count, memory, OS."""
    # Imported here: importlib.metadata (and the email package under it) is a tenth of the
    # report's start-up, and the report reads records without writing an environment.
    from importlib import metadata

    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_mb": machine_memory_mb(),
        "packages": versions,
        "target_settings": target_settings or {},
    }


class RecordWriter:
    """Appends records to a JSONL file, durably and thread-safely."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def write(self, record: InvocationRecord) -> None:
        """Append one record and force it to disk before returning."""
        line = record.to_json() + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.count += 1

    def close(self) -> None:
        """Close the file."""
        with self._lock:
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


#: The fields a record must carry, with their JSON types, for the report to use it.
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "workload": (str,),
    "shard": (int,),
    "shards": (int,),
    "mode": (str,),
    "cold": (bool,),
    "ok": (bool,),
    "client_ms": (int, float),
    "t_send": (int, float),
    "t_recv": (int, float),
}

#: The fields a batch summary (``batches.jsonl``) must carry.
BATCH_FIELDS: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "workload": (str,),
    "shards": (int,),
    "mode": (str,),
    "failed": (int,),
}


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a record may hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"{text} is not a finite number")
    return value


#: One decoder for every line (``json.loads`` with a hook builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _shape_problem(row: object, fields: dict[str, tuple[type, ...]]) -> str | None:
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    for key, types in fields.items():
        value = row.get(key)
        # bool is an int in Python; a count or a shard index must not be true/false.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {key!r} missing or not {'/'.join(t.__name__ for t in types)}"
    return None


def read_jsonl(path: Path, fields: dict[str, tuple[type, ...]] | None = None) -> JsonlRead:
    """Every well-formed row of a JSONL file; bad lines are skipped and listed, not fatal.

    A line is bad when it is not JSON (a torn last line after a crash, garbage), holds NaN or
    Infinity (never written by :class:`RecordWriter`), is not an object, or lacks one of
    ``fields`` with the right type. One bad line must not cost the run its other records.
    """
    rows: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = _DECODER.decode(line)
            except ValueError as exc:  # JSONDecodeError is a ValueError
                reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
                bad.append(BadLine(number, reason))
                continue
            problem = _shape_problem(row, fields or {})
            if problem:
                bad.append(BadLine(number, problem))
                continue
            rows.append(row)
    return JsonlRead(rows, bad)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The well-formed records of a ``records.jsonl``; bad lines (a torn last line) skipped.

    :func:`read_jsonl` with :data:`RECORD_FIELDS` says which lines were skipped and why.
    """
    return read_jsonl(path, RECORD_FIELDS).rows
