"""Shared fixtures: where the real Fashion-MNIST files are, and small IDX files made here."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.workloads.spec import WorkloadSpec

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
    """Keep tests off the user's cache, model store and state (the platform-change journal);
    forget per-process dataset caches."""
    home = tmp_path_factory.mktemp("shpc-cache")
    monkeypatch.setenv("SHPC_CACHE_DIR", str(home))
    monkeypatch.setenv("SHPC_STATE_DIR", str(tmp_path_factory.mktemp("shpc-state")))
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


@pytest.fixture
def copy_workload() -> Iterator[Callable[[str, str], WorkloadSpec]]:
    """Copy a workload package under a new name inside the package, as a user would.

    Proves that a workload is its package alone: the copy must work everywhere with no other
    edit. The copies are removed afterwards and the spec registry is rebuilt.
    """
    from serverless_hpc import workloads

    root = Path(workloads.__file__).parent
    made: list[Path] = []

    def copy(source: str, name: str) -> WorkloadSpec:
        dest = root / name
        if dest.exists():
            raise FileExistsError(dest)
        shutil.copytree(root / source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        made.append(dest)
        workloads.specs.cache_clear()
        return workloads.spec(name)

    try:
        yield copy
    finally:
        for dest in made:
            shutil.rmtree(dest, ignore_errors=True)
            for mod in [
                m for m in sys.modules if m.startswith(f"{workloads.__name__}.{dest.name}")
            ]:
                del sys.modules[mod]
        workloads.specs.cache_clear()
