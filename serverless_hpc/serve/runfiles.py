"""What the dashboard reads from a run directory: run.json and serve.json read again when
caught mid-write, the records counted and compacted for the page, the headline, the child's
error lines and the plan as shown (no paths, no store, no environment).

Every reader here is lenient: a field of the wrong type, a torn line or a file of another
shape says nothing rather than failing the page.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from serverless_hpc import rundir
from serverless_hpc.report.headline import MAX_HEADLINE_BYTES
from serverless_hpc.safeio import read_text

log = logging.getLogger(__name__)

SERVE_LOG: Final = rundir.files.SERVE_LOG

#: run.json and serve.json are replaced atomically (written aside, then renamed), but a file
#: from an older version, or one a user edits, may be caught half written: an unreadable
#: file is read again, a bounded number of times.
READ_TRIES: Final = 3
READ_RETRY_S: Final = 0.02


def read_json(path: Path, *, sleep: Callable[[float], None] = time.sleep) -> Any:
    """A JSON file; None when absent, or still unreadable after :data:`READ_TRIES` reads."""
    for attempt in range(READ_TRIES):
        try:
            return json.loads(read_text(path, max_bytes=MAX_HEADLINE_BYTES))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            log.debug("%s unreadable (try %d): %s", path, attempt + 1, exc)
            if attempt + 1 < READ_TRIES:
                sleep(READ_RETRY_S)
    return None


def name_list(value: object) -> list[str]:
    """A list of names from run.json or serve.json; anything else (a mistyped field) is none."""
    return [str(v)[:64] for v in value] if isinstance(value, list) else []


def _mapping(data: object) -> dict[str, Any]:
    """``data`` if it is a JSON object, else empty (a file of another shape says nothing)."""
    return dict(data) if isinstance(data, Mapping) else {}


def planned_invocations(meta: Mapping[str, Any]) -> int | None:
    """The records a complete run leaves at least, as the driver wrote it in run.json (it
    leaves out the batches it skipped); None when run.json does not say."""
    planned = meta.get("planned_invocations")
    return planned if isinstance(planned, int) and not isinstance(planned, bool) else None


def count_records(path: Path) -> tuple[int, int, dict[str, Any] | None]:
    """(invocations, failed, the last record compacted) of a records file; a torn line skipped.

    Anything but a regular file there (a FIFO) counts as no records: it is never waited on.
    """
    done = failed = 0
    last: dict[str, Any] | None = None
    try:
        with rundir.open_regular(path) as fh:
            for line in fh:
                rec = parse_record(line)
                if rec is None:
                    continue
                done += 1
                failed += 0 if rec["ok"] else 1
                last = rec
    except FileNotFoundError:
        return 0, 0, None
    except OSError as exc:
        log.warning("%s: %s", path, exc.strerror or exc)
        return 0, 0, None
    return done, failed, last


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One records.jsonl line compacted for the page, or None if it is not a whole record."""
    if not line.endswith(b"\n"):
        return None  # being written: the tail picks it up once its newline lands
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict):
        return None
    out = {k: rec.get(k) for k in rundir.RECORD_PAGE_FIELDS}
    out["ok"] = bool(rec.get("ok"))
    error = rec.get("error")
    out["error"] = str(error)[:500] if error else None
    return out


def headline(run_dir: Path) -> list[str]:
    """The run's headline sentences, as the report wrote them in headline.json (none until
    the report is built). See :func:`headline_of`."""
    return headline_of(read_json(rundir.paths(run_dir).headline))


def headline_of(data: object) -> list[str]:
    """The headline sentences of a parsed headline.json, verdict first as the report writes
    them (``{"sentences": [...], "verdict": {...}, ...}``; a plain list is read too); an item
    that is an object shows its ``text``/``sentence``. At most 8 sentences of 300 characters.
    """
    items = (data.get("sentences") or data.get("headline")) if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:8]:
        if isinstance(item, Mapping):
            text = next(
                (item[k] for k in ("text", "sentence", "headline") if k in item),
                ", ".join(f"{k}: {v}" for k, v in item.items()),
            )
        else:
            text = item
        out.append(str(text)[:300])
    return out


def error_lines(run_dir: Path, limit: int = 5) -> list[str]:
    """The last ``error:`` lines the child printed (the CLI's messages, no tracebacks)."""
    try:
        with (run_dir / SERVE_LOG).open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    return [ln[:500] for ln in tail if ln.startswith("error:")][-limit:]


def public_config(config: object) -> dict[str, Any] | None:
    """The run's plan as shown to the page: no paths, no store location, no environment."""
    if not isinstance(config, Mapping):
        return None
    raw = config.get("settings")
    settings: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    keys = (
        "targets",
        "workloads",
        "shards",
        "repeats",
        "train_repeats",
        "modes",
        "cold_repeats",
        "params",
    )
    out = {k: config.get(k) for k in keys}
    out["settings"] = {k: settings.get(k) for k in ("memory_mb", "concurrency", "timeout_s")}
    return out
