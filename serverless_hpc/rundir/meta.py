"""``run.json`` and ``serve.json``: written whole, read typed. ``run.json`` is the driver's,
read by the report, ``compare``, the dashboard and the CLI; ``serve.json`` is the
dashboard's note on a run it started. Also the environment ``run.json`` records once per run.

The driver replaces the file whole (a temporary file renamed over it), so a reader never
sees half of one. :func:`read_run_meta` returns the fields whose types are right and names
the others: one wrongly typed field never makes a run unreadable.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from serverless_hpc.host import machine_memory_mb
from serverless_hpc.rundir.files import paths
from serverless_hpc.safeio import open_regular

#: Packages whose versions are recorded with every run (when installed).
_TRACKED_PACKAGES: Final = (
    "serverless-hpc",
    "numpy",
    "ai-edge-litert",
    "tensorflow-cpu",
    "boto3",
)
#: The largest ``run.json`` a reader accepts (a run's is a few KB).
MAX_META_BYTES: Final = 16 * 1024 * 1024

_NUM: Final = (int, float)
#: The typed fields of ``run.json`` (others are kept as they are).
META_SCHEMA: Final[dict[str, tuple[type, ...]]] = {
    "run_id": (str,),
    "config": (dict,),
    "environment": (dict,),
    "targets": (dict,),
    "started": _NUM,
    "finished": _NUM,
    "aborted": (dict,),
    "planned_invocations": (int,),
    "planned_epochs": (int,),
    "skipped": (list,),
    "memory_ignored_by": (list,),
}


def environment() -> dict[str, Any]:
    """The driver's environment: Python, package versions, CPU count, memory, OS."""
    # Imported here: importlib.metadata (and the email package under it) is a tenth of the
    # report's start-up, and the report reads runs without writing an environment.
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
    }


#: The typed fields of ``serve.json``.
SERVE_SCHEMA: Final[dict[str, tuple[type, ...]]] = {
    "pid": (int,),
    "create_time": _NUM,
    "requested": _NUM,
    "targets": (list,),
    "workloads": (list,),
    "argv": (list,),
    "command": (str,),
    "exit_code": (int, type(None)),
    "cancel_requested": (*_NUM, str, type(None)),
}


def write_json_whole(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` whole (written aside, then renamed): a reader never sees half of it,
    and a failed write leaves the previous version."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_run_meta(root: Path, meta: Mapping[str, Any]) -> None:
    """Replace ``run.json`` in ``root`` whole."""
    write_json_whole(paths(root).meta, meta)


def write_serve_meta(root: Path, data: Mapping[str, Any]) -> None:
    """Replace ``serve.json`` in ``root`` whole."""
    write_json_whole(paths(root).serve_meta, data)


@dataclass(slots=True)
class RunMeta:
    """``run.json`` as read: its well-typed fields, and what was wrong with the file."""

    data: dict[str, Any] = field(default_factory=dict)
    #: Why the file or some of its fields could not be used ("" lines none).
    problems: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        """A field (``default`` when missing or mistyped)."""
        return self.data.get(key, default)


def read_run_meta(root: Path) -> RunMeta:
    """``run.json`` of ``root`` (see :func:`read_typed_json`)."""
    return read_typed_json(paths(root).meta, META_SCHEMA)


def read_serve_meta(root: Path) -> RunMeta:
    """``serve.json`` of ``root`` (see :func:`read_typed_json`)."""
    return read_typed_json(paths(root).serve_meta, SERVE_SCHEMA)


def read_typed_json(path: Path, schema: Mapping[str, tuple[type, ...]]) -> RunMeta:
    """A JSON object file: missing -> empty; unreadable -> empty with the reason; each
    field of ``schema`` with the wrong type dropped and named (the others kept as they are)."""
    out = RunMeta()
    try:
        with open_regular(path) as fh:
            raw = fh.read(MAX_META_BYTES + 1)
    except FileNotFoundError:
        return out
    except OSError as exc:
        out.problems.append(f"{path.name}: {exc.strerror or exc}")
        return out
    if len(raw) > MAX_META_BYTES:
        out.problems.append(f"{path.name}: larger than {MAX_META_BYTES} bytes")
        return out
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        out.problems.append(f"{path.name}: not JSON")
        return out
    if not isinstance(data, dict):
        out.problems.append(f"{path.name}: not a JSON object")
        return out
    for key, value in data.items():
        types = schema.get(key)
        if types is not None and not _fits(value, types):
            out.problems.append(f"{path.name}: field {key!r} is not {types[0].__name__}")
            continue
        out.data[key] = value
    return out


def _fits(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)
