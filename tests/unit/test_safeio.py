"""Regular files only, never blocking: FIFOs, devices, sockets and symlinks are refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from serverless_hpc import safeio
from serverless_hpc.safeio import FileTooLarge, NotRegularFile


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert safeio.read_bytes(path) == b"hello"
    assert safeio.read_text(path) == "hello"
    assert safeio.is_regular(path) and safeio.check_regular(path)


def test_a_fifo_is_refused_at_once_naming_it(tmp_path: Path) -> None:
    # GIVEN a FIFO with no writer (open() would block forever)
    fifo = tmp_path / "LATEST"
    os.mkfifo(fifo)
    # WHEN it is read THEN the read is refused at once, naming the file and what it is
    with pytest.raises(NotRegularFile) as err:
        safeio.read_bytes(fifo)
    assert str(err.value) == f"{fifo}: not a regular file but a FIFO"
    assert isinstance(err.value, OSError) and err.value.filename == str(fifo)
    assert not safeio.is_regular(fifo)
    with pytest.raises(NotRegularFile):
        safeio.check_regular(fifo)


def test_a_device_a_socket_and_a_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile, match="character device"):
        safeio.read_bytes("/dev/zero")
    with pytest.raises(NotRegularFile, match="directory"):
        safeio.read_bytes(tmp_path)
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(OSError, match=r"socket|No such device"):
            safeio.read_bytes(sock_path)
        with pytest.raises(NotRegularFile, match="socket"):
            safeio.check_regular(sock_path)


def test_a_symlink_is_refused_only_with_nofollow(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("key")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    assert safeio.read_text(link) == "key"
    with pytest.raises(NotRegularFile, match="symbolic link"):
        safeio.read_text(link, nofollow=True)
    assert not safeio.is_regular(link, nofollow=True)


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safeio.read_bytes(tmp_path / "absent")
    assert safeio.check_regular(tmp_path / "absent") is False


def test_max_bytes_bounds_the_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    assert safeio.read_bytes(path, max_bytes=100) == b"x" * 100
    with pytest.raises(FileTooLarge, match="100 bytes, more than the 99 accepted"):
        safeio.read_bytes(path, max_bytes=99)
