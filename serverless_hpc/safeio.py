"""Open a file only if it is a regular file, without ever blocking on one that is not.

``open(path)`` on a FIFO blocks until a writer appears (forever, if none does), and a
device or socket is no better; a driver reading ``LATEST``, a dataset file or a run's
``run.json`` would hang on one. Here the file is opened with ``O_NONBLOCK`` (which makes
opening a FIFO return at once), checked with ``fstat`` on the descriptor just opened (no
window for a swap between check and read), refused with :class:`NotRegularFile` naming the
path and what it is when it is not a regular file, and only then read, normally.

``nofollow=True`` also refuses a symbolic link as the last path component (``O_NOFOLLOW``),
for files served from a directory others may write to.

This module imports nothing from the project, so any layer can use it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import BinaryIO, Final

#: Open flags for reading without blocking (0 where the platform lacks one).
_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


class NotRegularFile(OSError):
    """The path exists but is not a regular file (a FIFO, device, socket, directory...).

    An :class:`OSError` (``errno`` ``EINVAL``, ``filename`` the path), so callers that
    already turn unreadable files into messages keep doing so.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file but a {kind}", os.fspath(path))
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class FileTooLarge(OSError):
    """The file holds more bytes than the caller accepts (``errno`` ``EFBIG``)."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        super().__init__(
            errno.EFBIG, f"{size} bytes, more than the {limit} accepted", os.fspath(path)
        )

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words: ``"regular file"``, ``"FIFO"``, ..."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISLNK, "symbolic link"),
    ):
        if test(mode):
            return name
    return "special file"


def open_regular(path: str | os.PathLike[str], *, nofollow: bool = False) -> BinaryIO:
    """``path`` opened for binary reading, if and only if it is a regular file.

    :class:`NotRegularFile` otherwise (a symbolic link too, with ``nofollow``);
    ``FileNotFoundError`` and other :class:`OSError` as ``open`` raises them. Never blocks.
    """
    flags = _FLAGS | (_NOFOLLOW if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if nofollow and exc.errno == errno.ELOOP:
            raise NotRegularFile(path, "symbolic link") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, kind_of(mode))
    try:
        # Reads of a regular file never block; clear the flag so the file behaves as usual.
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~getattr(os, "O_NONBLOCK", 0))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(
    path: str | os.PathLike[str], *, max_bytes: int | None = None, nofollow: bool = False
) -> bytes:
    """The bytes of regular file ``path`` (see :func:`open_regular`).

    With ``max_bytes``, :class:`FileTooLarge` for a larger file (checked on the descriptor
    and while reading, so a file that grows meanwhile is bounded too).
    """
    with open_regular(path, nofollow=nofollow) as fh:
        if max_bytes is None:
            return fh.read()
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise FileTooLarge(path, size, max_bytes)
        data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileTooLarge(path, len(data), max_bytes)
        return data


def read_text(
    path: str | os.PathLike[str],
    *,
    encoding: str = "utf-8",
    max_bytes: int | None = None,
    nofollow: bool = False,
) -> str:
    """The text of regular file ``path`` (``UnicodeDecodeError`` as ``Path.read_text``)."""
    return read_bytes(path, max_bytes=max_bytes, nofollow=nofollow).decode(encoding)


def is_regular(path: str | os.PathLike[str], *, nofollow: bool = False) -> bool:
    """Whether ``path`` is a regular file (``nofollow``: and not a symbolic link to one).

    A stat only, which never blocks; for reading, use :func:`open_regular` (no race).
    """
    try:
        st = os.lstat(path) if nofollow else os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode)


def check_regular(path: str | os.PathLike[str], *, nofollow: bool = False) -> bool:
    """False when ``path`` does not exist; True when it is a regular file; else
    :class:`NotRegularFile` (for callers that treat a missing file as empty)."""
    try:
        st = os.lstat(path) if nofollow else os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of(st.st_mode))
    return True


__all__ = [
    "FileTooLarge",
    "NotRegularFile",
    "check_regular",
    "is_regular",
    "kind_of",
    "open_regular",
    "read_bytes",
    "read_text",
]
