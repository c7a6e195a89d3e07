"""The object-store interface both implementations share, and the key rules they enforce.

Its own module so that :mod:`serverless_hpc.store` (the local store, the factory and the
model-bundle protocol) and :mod:`serverless_hpc.store_s3` (the S3 store) both depend on it
and not on each other.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final

from serverless_hpc.contract import InvalidRequest

#: One '/'-separated part of a key (also what a bundle version may hold).
KEY_PART_RE: Final = re.compile(r"^[A-Za-z0-9_.=-]+$")


def check_key(key: str) -> str:
    """``key`` if every part is a plain name (no empty part, ``.`` or ``..``); else
    :class:`InvalidRequest`, so no key can escape a store's root."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not KEY_PART_RE.match(p) for p in parts):
        raise InvalidRequest(f"invalid object key {key!r}")
    return key


class Store(ABC):
    """A flat key/value object store with '/'-separated keys."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically (readers see the old or the new object)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read ``key``; raise :class:`NotFound` when it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A local file holding ``key``'s bytes (a download cache for remote stores)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/``; return how many were deleted.

        For scratch objects (training checkpoints) the driver cleans up; model bundles are
        never deleted through this.
        """
