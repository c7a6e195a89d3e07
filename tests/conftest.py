"""Shared fixtures: where the real Fashion-MNIST files are, and small IDX files made here."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc.data import fashion_mnist as fm

REPO = Path(__file__).resolve().parent.parent
# The development checkout sits beside shared/; CI exports FASHION_MNIST_DIR.
_CANDIDATES = [os.environ.get("FASHION_MNIST_DIR"), str(REPO.parent / "shared/data/fashion-mnist")]


def real_data_dir() -> Path | None:
    """The real Fashion-MNIST directory if all four files are there, else None."""
    for cand in _CANDIDATES:
        if cand and Path(cand).is_dir() and not fm.missing_files(Path(cand)):
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data; tests using it are skipped, with the reason, when it is absent."""
    path = real_data_dir()
    if path is None:
        pytest.skip(
            "real Fashion-MNIST files not found: set FASHION_MNIST_DIR to a directory holding "
            "the four canonical .gz files (or run 'shpc data fetch')"
        )
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Keep tests off the user's cache and model store; forget per-process dataset caches."""
    home = tmp_path_factory.mktemp("shpc-cache")
    monkeypatch.setenv("SHPC_CACHE_DIR", str(home))
    monkeypatch.delenv("SHPC_STORE", raising=False)
    fm.clear_cache()
    yield
    fm.clear_cache()


def write_idx(
    path: Path, array: np.ndarray, *, magic: bytes | None = None, extra: bytes = b"", cut: int = 0
) -> Path:
    """Write ``array`` as a gzip IDX file; ``magic``/``extra``/``cut`` make broken ones."""
    header = magic if magic is not None else struct.pack(">HBB", 0, 0x08, array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + dims + array.astype(np.uint8).tobytes() + extra
    if cut:
        payload = payload[:-cut]
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    return path
