"""A local journal of platform settings the driver changed and has not yet put back.

A memory sweep changes a platform setting (an OpenWhisk action's memory, a Lambda function's
``MemorySize``) and restores it at the end, also after a failure or Ctrl-C. A driver killed
with ``kill -9`` (or a machine that loses power) cannot restore anything, and the next run
would silently measure at the sweep's last size. So every change is written here first:

1. :func:`record` the setting's original value, *before* the driver changes it;
2. :func:`clear` it once the original is back;
3. when a target opens, :func:`leftovers` lists the entries of its platform whose driver is
   gone; the target restores each (and logs that it did) before anything is measured, then
   clears it.

Which driver owns an entry is told by a lock, not a pid (pids are reused): each process that
records holds an exclusive ``flock`` on its own owner file for its whole life, and the kernel
drops it when the process dies however it dies. An entry whose owner file can be locked (or
is gone) is a leftover; one whose owner holds its lock belongs to a driver still running
(another run sweeping the same platform), and is left alone.

The journal is one JSON file, ``platform-changes.json``, in the user's state directory
(:func:`state_dir`: ``$SHPC_STATE_DIR``, else ``$XDG_STATE_HOME/serverless-hpc``, else
``~/.local/state/serverless-hpc``), rewritten atomically (a temporary file, fsync, rename)
under an exclusive lock, so concurrent drivers never lose each other's entries. It holds
names and sizes only, never a credential. A journal that cannot be parsed is moved aside
(named in a warning) and a new one started.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from serverless_hpc import safeio

log = logging.getLogger(__name__)

JOURNAL_FILE: Final = "platform-changes.json"
OWNERS_DIR: Final = "journal-owners"
#: Largest journal read (a few hundred bytes an entry).
MAX_JOURNAL_BYTES: Final = 4 * 2**20


@dataclass(frozen=True, slots=True)
class Entry:
    """One changed setting: where, what, its original value, and the driver that changed it."""

    platform: str
    resource: str
    setting: str
    original: int
    owner: str
    host: str
    pid: int
    time: float

    @classmethod
    def parse(cls, data: object) -> Entry | None:
        """An entry from its JSON form; None when a field is missing or of the wrong type."""
        if not isinstance(data, dict):
            return None
        try:
            entry = cls(**{k: data[k] for k in cls.__slots__})
        except (KeyError, TypeError):
            return None
        types = {"platform": str, "resource": str, "setting": str, "owner": str, "host": str}
        ok = all(isinstance(getattr(entry, k), t) for k, t in types.items())
        numbers = isinstance(entry.original, int) and isinstance(entry.pid, int)
        return entry if ok and numbers and isinstance(entry.time, int | float) else None


def state_dir() -> Path:
    """``$SHPC_STATE_DIR``, else ``$XDG_STATE_HOME/serverless-hpc``, else
    ``~/.local/state/serverless-hpc`` (not created here)."""
    root = os.environ.get("SHPC_STATE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "serverless-hpc"


def journal_path() -> Path:
    """The journal file (see the module docstring)."""
    return state_dir() / JOURNAL_FILE


class _Owner:
    """This process's owner file, locked for the process's life (created on first use)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.name: str | None = None
        self.fd: int | None = None
        self.pid: int | None = None

    def get(self) -> str:
        with self.lock:
            if self.name is None or self.pid != os.getpid():  # a forked child: its own
                directory = state_dir() / OWNERS_DIR
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                name = f"{os.getpid()}-{secrets.token_hex(4)}.lock"
                fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.name, self.fd, self.pid = name, fd, os.getpid()
                atexit.register(self.release)
            return self.name

    def release(self) -> None:
        """At exit: remove this process's owner file unless an entry still names it (then
        the next driver sees the owner gone and restores the entry)."""
        name = self.name
        if name is None or self.pid != os.getpid():
            return
        with _locked() as path:
            if not any(e.owner == name for e in _read(path)):
                (state_dir() / OWNERS_DIR / name).unlink(missing_ok=True)


_OWNER: Final = _Owner()


def _owner_alive(owner: str) -> bool:
    """Whether the process owning ``owner`` still holds its lock (this process: True)."""
    if owner == _OWNER.name and _OWNER.pid == os.getpid():
        return True
    path = state_dir() / OWNERS_DIR / owner
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """Hold the journal's exclusive lock (a sibling lock file) while reading and rewriting."""
    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def _read(path: Path) -> list[Entry]:
    """The journal's entries; a corrupt journal is moved aside (with a warning)."""
    try:
        raw = safeio.read_bytes(path, max_bytes=MAX_JOURNAL_BYTES)
    except FileNotFoundError:
        return []
    why = None
    items: list[Any] = []
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        why = str(exc)
    else:
        found = data.get("entries") if isinstance(data, dict) else None
        if isinstance(found, list):
            items = found
        else:
            why = "no list of entries"
    if why is not None:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.replace(aside)
        log.warning(
            "the platform-change journal %s was corrupt (%s); moved to %s", path, why, aside
        )
        return []
    entries = []
    for item in items:
        entry = Entry.parse(item)
        if entry is None:
            log.warning("skipped a malformed entry of %s: %.200r", path, item)
        else:
            entries.append(entry)
    return entries


def _write(path: Path, entries: list[Entry]) -> None:
    """Replace the journal atomically (temporary file, fsync, rename, directory fsync)."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    body = json.dumps({"version": 1, "entries": [asdict(e) for e in entries]}, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _same(entry: Entry, platform: str, resource: str, setting: str) -> bool:
    return (entry.platform, entry.resource, entry.setting) == (platform, resource, setting)


def record(platform: str, resource: str, setting: str, original: int) -> None:
    """Journal ``setting`` of ``resource`` on ``platform`` as ``original``, before a change.

    An entry already there (an earlier change in this run, or a leftover not yet restored)
    keeps its original value: the first original is the one to put back.
    """
    owner = _OWNER.get()
    with _locked() as path:
        entries = _read(path)
        if any(_same(e, platform, resource, setting) for e in entries):
            return
        entries.append(
            Entry(
                platform=platform,
                resource=resource,
                setting=setting,
                original=int(original),
                owner=owner,
                host=socket.gethostname(),
                pid=os.getpid(),
                time=time.time(),
            )
        )
        _write(path, entries)


def clear(platform: str, resource: str, setting: str) -> None:
    """Remove the entry of ``setting`` of ``resource`` on ``platform`` (it was restored)."""
    with _locked() as path:
        entries = _read(path)
        kept = [e for e in entries if not _same(e, platform, resource, setting)]
        if len(kept) != len(entries):
            _write(path, kept)


def leftovers(platform: str) -> list[Entry]:
    """The entries of ``platform`` left by drivers that are gone (see the module docstring).

    Entries of a driver still running, or recorded on another host (whose processes cannot
    be checked from here), are not listed.
    """
    path = journal_path()
    if not path.exists():
        return []
    host = socket.gethostname()
    with _locked() as path:
        entries = [e for e in _read(path) if e.platform == platform]
    out = []
    for entry in entries:
        if entry.host != host:
            log.info(
                "journal entry for %s %s was made on %s; not restored from here",
                entry.resource,
                entry.setting,
                entry.host,
            )
        elif not _owner_alive(entry.owner):
            out.append(entry)
    return out


def forget_owner(entry: Entry) -> None:
    """Remove a dead driver's owner file once none of its entries is left."""
    with _locked() as path:
        if any(e.owner == entry.owner for e in _read(path)):
            return
    if not _owner_alive(entry.owner):
        (state_dir() / OWNERS_DIR / entry.owner).unlink(missing_ok=True)


def restore_leftovers(platform: str, restore: Callable[[Entry], object]) -> list[Entry]:
    """Put back every leftover setting of ``platform`` with ``restore(entry)``, clear each
    one, and log what was done; the entries handled.

    ``restore`` returns False when there is nothing to put back (the resource is gone); the
    entry is cleared and the log says so. An exception from ``restore`` propagates (the entry
    stays journalled): the caller must not measure on a platform it could not put back.
    """
    done = []
    for entry in leftovers(platform):
        restored = restore(entry) is not False
        clear(entry.platform, entry.resource, entry.setting)
        died = (
            f"a driver (pid {entry.pid} on {entry.host}, "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(entry.time))}) that died"
        )
        if restored:
            log.warning(
                "%s: %s %s restored to %d, as it was before %s changed it",
                platform,
                entry.resource,
                entry.setting,
                entry.original,
                died,
            )
        else:
            log.warning(
                "%s: %s, whose %s %s changed, no longer exists; its journal entry is dropped",
                platform,
                entry.resource,
                entry.setting,
                died,
            )
        forget_owner(entry)
        done.append(entry)
    return done
