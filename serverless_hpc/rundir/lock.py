"""One run per output directory: an exclusive claim held for the run's whole life.

A run claims its directory by taking an exclusive ``flock`` on ``<out>/.lock`` (created if
needed) and writing its holder there: pid, host, start time, run id. The lock is the kernel's:
it is released when the holding process exits however it exits (kill -9 included), so a
second run is refused while the first is alive and a dead one never blocks the directory. A
lock file that still names a holder when its lock is free was left by a process that died
without releasing it: that is reported (the claim then succeeds; the dead run's records stay).

The run's files then must not mix with another run's or overwrite a user's own: a directory
that holds records, or files the run or its report would write (``summary.md``...) that are
not an earlier claim's leftovers, is refused, naming them.

Function instances check the same lock (``$SHPC_RUN_LOCK``) before they publish a model, so
an instance that outlived its run cannot move the store's ``latest`` (see
:func:`serverless_hpc.store.check_publisher`).

This module imports nothing from the project but the run directory's own names.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from serverless_hpc.rundir.files import APPENDED, LOCK, RUN_META, WRITTEN

log = logging.getLogger(__name__)

LOCK_NAME: Final = LOCK
RECORD_FILES: Final = APPENDED
WRITTEN_FILES: Final = WRITTEN
#: A run id names a directory under ``results/``: one path segment, no dot-dot.
RUN_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RunDirError(Exception):
    """The directory cannot be claimed: held by another run, not a directory, not writable."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one safe path segment, else :class:`RunDirError` naming the rule."""
    if not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise RunDirError(
            f"--run-id {run_id!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (it names a directory under results/)"
        )
    return run_id


def check_out_dir(out: Path) -> None:
    """Refuse a directory whose files a run would mix with or overwrite.

    Empty record files and an aborted claim's ``run.json`` (a run that wrote no record) do
    not count: such a directory is reusable.
    """
    held = [n for n in RECORD_FILES if _nonempty(out / n)]
    if held:
        raise RunDirError(
            f"{out} already holds {', '.join(held)} from another run; choose another --out "
            "(records are appended, so reusing the directory would mix the runs)"
        )
    leftover_run = (out / RUN_META).is_file() and not any(_nonempty(out / n) for n in RECORD_FILES)
    theirs = [
        n for n in WRITTEN_FILES if (out / n).exists() and not (n == RUN_META and leftover_run)
    ]
    if theirs:
        raise RunDirError(
            f"{out} already holds {', '.join(theirs)}, which this run would overwrite; move "
            "them or choose another --out"
        )


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from exc


@dataclass(slots=True)
class Holder:
    """Who holds (or held) a directory, as its lock file says."""

    pid: int | None
    host: str | None
    started: float | None
    run_id: str | None

    def describe(self) -> str:
        """``pid 123 on host h since 2026-11-30T13:59:12Z (run r)``."""
        when = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
            if self.started
            else "an unknown time"
        )
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"pid {self.pid} on host {self.host} since {when}{run}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lock file names; None for an empty (released) or unreadable one."""
        if not text.strip():
            return None
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError:
            return cls(None, None, None, None)
        if not isinstance(data, dict):
            return cls(None, None, None, None)
        pid, started = data.get("pid"), data.get("started")
        return cls(
            pid=pid if isinstance(pid, int) else None,
            host=str(data.get("host")) if data.get("host") else None,
            started=float(started) if isinstance(started, int | float) else None,
            run_id=str(data.get("run_id")) if data.get("run_id") else None,
        )


class RunLock:
    """The claim on one run directory; use :meth:`claim`, then :meth:`release` (or ``with``)."""

    def __init__(self, out: Path, fd: int, created_dir: bool, stale: Holder | None) -> None:
        self.out = out
        self.path = out / LOCK_NAME
        self._fd: int | None = fd
        self._created_dir = created_dir
        #: The holder named by a lock file whose process had died without releasing it.
        self.stale = stale

    @classmethod
    def claim(cls, out: Path, *, run_id: str = "") -> RunLock:
        """Create ``out`` if needed and take its lock, or raise :class:`RunDirError`.

        Never blocks: a held lock is refused at once, naming its holder.
        """
        if out.exists() and not out.is_dir():
            raise RunDirError(f"--out {out} exists and is not a directory")
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RunDirError(
                f"--out {out}: cannot create the run directory or its lock: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(_read_fd(fd))
            os.close(fd)
            who = holder.describe() if holder else "another process"
            raise RunDirError(
                f"{out} is in use by another run ({who}); wait for it or choose another --out"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"--out {out}: cannot lock {LOCK_NAME}: {exc.strerror}") from exc
        stale = Holder.parse(_read_fd(fd))
        if stale is not None:
            log.info(
                "%s was claimed by a run that ended without releasing it (%s): it was killed "
                "or crashed; its records, if any, are kept",
                out,
                stale.describe(),
            )
        lock = cls(out, fd, created, stale)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "run_id": run_id,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:
            lock.release()
            raise RunDirError(f"--out {out}: cannot write {LOCK_NAME}: {exc.strerror}") from exc
        return lock

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Empty the lock file (a released claim), unlock, and remove a directory left empty.

        The file stays (removing it would let a third run lock a new file while a second
        still waits on the old one); an empty file means "released", a named holder whose
        lock is free means "died without releasing".
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:  # a full or read-only disk: the kernel lock still goes
            log.warning("could not clear %s: %s", self.path, exc.strerror)
        finally:
            os.close(fd)
        if self._created_dir:
            with contextlib.suppress(OSError):
                if [p.name for p in self.out.iterdir()] == [LOCK_NAME]:
                    self.path.unlink()
                    self.out.rmdir()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_fd(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def lock_is_held(path: Path) -> bool:
    """Whether some process holds the run lock at ``path`` (checked without blocking).

    Used by a function instance before it publishes a model: a free (or missing) lock means
    the run that started the instance is over.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
