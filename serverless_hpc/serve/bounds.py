"""What the dashboard accepts and opens: bounds on requests, and run files read safely.

A request's headers and JSON body are bounded before they are parsed (a 20,000-deep JSON
array would otherwise end in a RecursionError), and ``Last-Event-ID`` is used only when it
is a plain ASCII number. A run directory is written by runs (and anyone who can write
there): before its files are read, each one the dashboard reads must be a regular file or
absent (:func:`check_run_files`: a FIFO would block a worker thread for good), and a file
served whole (the report) is opened without following a symbolic link, inside the results
directory (:func:`read_run_file`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Final

from serverless_hpc import safeio
from serverless_hpc.rundir import files

#: Deepest JSON nesting accepted in a request body (a run request is two levels deep).
MAX_JSON_DEPTH: Final = 32
#: Bounds on a request's headers: total bytes of names and values, and how many.
MAX_HEADER_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 100
#: Largest report served (a report with every chart inlined is a few MB).
MAX_REPORT_BYTES: Final = 64 * 2**20
#: Longest ``Last-Event-ID`` used (a byte offset; 18 digits is beyond any file's size).
MAX_EVENT_ID_DIGITS: Final = 18
#: The files of a run directory the dashboard reads (each must be a regular file or absent).
#: Of those, the ones the run list and a run's page still read with a plain ``open`` (which a
#: FIFO would block for good): checked before every request that reads a run.
PLAIN_READS: Final = (files.HEADLINE, files.SERVE_LOG)
RUN_FILES: Final = (
    files.RUN_META,
    files.SERVE_META,
    files.RECORDS,
    files.BATCHES,
    files.HEADLINE,
    files.SUMMARY_CSV,
    files.SERVE_LOG,
    files.REPORT_HTML,
)


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text ``raw`` nests arrays and objects deeper than ``limit``.

    A scan of the bytes (strings and their escapes skipped), before any parser recurses.
    """
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def last_event_offset(raw: str | None) -> int:
    """The byte offset a ``Last-Event-ID`` names; 0 (start over) for anything that is not a
    plain ASCII number of at most :data:`MAX_EVENT_ID_DIGITS` digits."""
    if not raw or len(raw) > MAX_EVENT_ID_DIGITS or not raw.isascii() or not raw.isdigit():
        return 0
    return int(raw)


class UnreadableRun(Exception):
    """A run directory holds a file the dashboard must not open (see the module docstring)."""


def check_run_files(run_dir: Path, names: tuple[str, ...] = RUN_FILES) -> None:
    """:class:`UnreadableRun` naming the first of ``names`` that exists and is not a regular
    file (a symbolic link included); a stat each, so it never blocks."""
    for name in names:
        try:
            mode = os.lstat(run_dir / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UnreadableRun(f"run {run_dir.name}: {name}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise UnreadableRun(
                f"run {run_dir.name}: {name} is not a regular file but a {safeio.kind_of(mode)}"
            )


def read_run_file(results: Path, run_dir: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of ``run_dir/name`` if it is a regular file inside ``results``, never
    following a symbolic link; :class:`UnreadableRun` otherwise, ``FileNotFoundError`` when
    it is absent."""
    path = run_dir / name
    root = results.resolve()
    if path.resolve().parent != run_dir.resolve() or not run_dir.resolve().is_relative_to(root):
        raise UnreadableRun(f"run {run_dir.name}: {name} is outside the results directory")
    try:
        return safeio.read_bytes(path, max_bytes=max_bytes, nofollow=True)
    except (safeio.NotRegularFile, safeio.FileTooLarge) as exc:
        raise UnreadableRun(f"run {run_dir.name}: {name}: {exc.strerror}") from None


def unreadable_status(run_id: str, why: str) -> dict[str, Any]:
    """A list entry for a run whose files cannot be read safely (shown as such)."""
    return {
        "id": run_id,
        "status": "unreadable",
        "source": "terminal",
        "targets": [],
        "workloads": [],
        "started": None,
        "finished": None,
        "aborted": None,
        "exit_code": None,
        "report": False,
        "headline": [],
        "verdict": [],
        "command": None,
        "errors": [why],
        "skipped": [],
    }
