"""The invocation record: one JSON line per invocation, appended the moment it completes.

Each line is flushed and fsynced before the next invocation's record, so a crash or a
Ctrl-C keeps every finished invocation. The report reads records only; it never needs to
know which target produced them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from serverless_hpc.host import machine_memory_mb
from serverless_hpc.invocation import InvocationRecord

#: Packages whose versions are recorded with every result (when installed).
_TRACKED_PACKAGES = ("serverless-hpc", "numpy", "ai-edge-litert", "tensorflow-cpu", "boto3")


def environment(target_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The driver's environment: Python, package versions, CPU count, memory, OS."""
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


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a JSONL file; a torn last line (a crash mid-write) is skipped."""
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue  # the line being written when the run died
            raise ValueError(f"{path}:{i + 1}: not a JSON record") from None
    return out
