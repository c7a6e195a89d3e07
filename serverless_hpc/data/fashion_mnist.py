"""Fashion-MNIST: the canonical IDX gzip files, verified, read into numpy arrays.

The four files are read exactly as Zalando Research publishes them. Every byte is accounted
for: the gzip stream must be complete, the IDX magic number and dimensions must match what
the file should hold, and the payload size must equal the product of the dimensions. The
canonical files are also checked against their published md5 sums, once per process per
file. Any failure raises :class:`DatasetError` naming the file and what is wrong; a wrong
array is never returned silently. Files are opened only if they are regular files
(:mod:`serverless_hpc.safeio`): a FIFO or device in the data directory is refused at once,
never waited on.

Where the files come from, in order:

1. an explicit directory (the CLI's ``--data-dir``),
2. ``$FASHION_MNIST_DIR``,
3. a cache directory (``$SHPC_CACHE_DIR/fashion-mnist``, default
   ``~/.cache/serverless-hpc/fashion-mnist``), filled by :func:`fetch` from the canonical
   source when the files are missing.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import stat
import struct
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from serverless_hpc import safeio
from serverless_hpc.data.catalog import (
    FILES,
    NUM_CLASSES,
    SPLITS,
    IdxFile,
    Split,
)
from serverless_hpc.host import cache_dir
from serverless_hpc.ranges import Range

log = logging.getLogger(__name__)

_BY_NAME: Final = {f.name: f for pair in FILES.values() for f in pair}

#: Canonical source first (Zalando Research's own bucket, as linked from its README), then the
#: project repository's copy of the same files. Both serve byte-identical files; md5 decides.
DEFAULT_MIRRORS: Final = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

#: Appended to a fetch failure: most often the machine is offline, and a local copy will do.
OFFLINE_HINT: Final = (
    ". Hint: set FASHION_MNIST_DIR (or pass --data-dir) to a directory holding the four "
    "files, or run 'shpc data fetch' with internet access."
)

# IDX type code 0x08 is unsigned byte, the only one Fashion-MNIST uses.
_IDX_UBYTE: Final = 0x08
_MD5_CHUNK: Final = 1 << 20


class DatasetError(Exception):
    """A dataset file is missing, truncated, corrupt or not the file it claims to be."""


def validate_range(start: int, end: int, total: int, *, what: str = "range") -> Range:
    """Return ``Range(start, end)`` after checking ``0 <= start < end <= total``.

    The message names the bad bound, because shard bounds come from callers over the network.
    """
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{what}: '{name}' must be an integer, got {value!r}")
    if start < 0:
        raise ValueError(f"{what}: 'start' must be >= 0, got {start}")
    if end > total:
        raise ValueError(f"{what}: 'end' must be <= {total}, got {end}")
    if start >= end:
        raise ValueError(f"{what}: 'start' ({start}) must be < 'end' ({end})")
    return Range(start, end)


def read_idx(path: Path, *, expected_shape: Sequence[int] | None = None) -> np.ndarray:
    """Read one gzip-compressed IDX file into a uint8 array, validating every part of it.

    Raises :class:`DatasetError` naming ``path`` when the gzip stream is truncated or corrupt,
    the magic number is wrong, the payload is shorter or longer than its header says, or the
    shape differs from ``expected_shape``.
    """
    try:
        with safeio.open_regular(path) as compressed, gzip.GzipFile(fileobj=compressed) as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except safeio.NotRegularFile as exc:
        raise DatasetError(str(exc)) from None
    except EOFError as exc:
        raise DatasetError(f"{path}: truncated gzip stream ({exc})") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != _IDX_UBYTE or ndim == 0:
        raise DatasetError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (want 0x000008NN, unsigned bytes)"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DatasetError(f"{path}: header truncated ({len(raw)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    if expected_shape is not None and tuple(dims) != tuple(expected_shape):
        raise DatasetError(f"{path}: header says shape {dims}, expected {tuple(expected_shape)}")
    want = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - header_len
    if have != want:
        kind = "truncated" if have < want else "has trailing bytes"
        raise DatasetError(f"{path}: payload {kind}: {have} bytes, header promises {want}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with safeio.open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(_MD5_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


def verify_file(path: Path, spec: IdxFile) -> None:
    """Check ``path`` against the published md5 of ``spec``; cached per (path, size, mtime)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file but a {safeio.kind_of(st.st_mode)}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return
    try:
        actual = md5sum(path)
    except safeio.NotRegularFile as exc:  # replaced since the stat above
        raise DatasetError(str(exc)) from None
    if actual != spec.md5:
        raise DatasetError(
            f"{path}: md5 {actual} does not match the published {spec.md5} for {spec.name} "
            f"({st.st_size} bytes); the file is corrupt or not the canonical one"
        )
    with _verified_lock:
        _verified.add(key)


def verify_dir(data_dir: Path) -> None:
    """Check all four canonical files in ``data_dir`` against their published md5 sums.

    About 0.1 s for the whole set; :class:`DatasetError` names the first file that is
    missing or differs.
    """
    for spec in _BY_NAME.values():
        verify_file(data_dir / spec.name, spec)


def default_cache_dir() -> Path:
    """Where fetched files live: ``$SHPC_CACHE_DIR/fashion-mnist`` or the user cache."""
    return cache_dir() / "fashion-mnist"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The directory to read from: the argument, then ``$FASHION_MNIST_DIR``, then the cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("FASHION_MNIST_DIR")
    if env:
        return Path(env).expanduser()
    return default_cache_dir()


def missing_files(data_dir: Path) -> list[str]:
    """Names of canonical files absent from ``data_dir`` (present but not a regular file
    counts as present: reading it says what it is)."""
    return [name for name in _BY_NAME if not (data_dir / name).exists()]


def fetch(
    dest: Path | None = None,
    *,
    mirrors: Iterable[str] | None = None,
    timeout_s: float = 60.0,
    files: Iterable[str] | None = None,
) -> Path:
    """Download missing canonical files into ``dest``, verifying each md5 before keeping it.

    Each file is written to a temporary name and moved into place only when its md5 matches,
    so an interrupted or corrupt download never leaves a file that looks valid. Files already
    present and valid are kept. Mirrors are tried in order; ``$FASHION_MNIST_MIRROR`` puts one
    in front. Raises :class:`DatasetError` listing every mirror's failure for a file none of
    them could provide, ending with :data:`OFFLINE_HINT`.
    """
    dest = dest or default_cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    urls = list(mirrors) if mirrors is not None else list(DEFAULT_MIRRORS)
    env_mirror = os.environ.get("FASHION_MNIST_MIRROR")
    if env_mirror and mirrors is None:
        urls.insert(0, env_mirror)
    for name in files or _BY_NAME:
        spec = _BY_NAME[name]
        target = dest / name
        if target.is_file():
            try:
                verify_file(target, spec)
                continue
            except DatasetError as exc:
                log.warning("replacing invalid cached file: %s", exc)
        failures: list[str] = []
        for base in urls:
            url = base.rstrip("/") + "/" + name
            try:
                _download_verified(url, target, spec, timeout_s)
            except (OSError, urllib.error.URLError, DatasetError) as exc:
                failures.append(f"{url}: {exc}")
                log.warning("download failed: %s: %s", url, exc)
                continue
            log.info("fetched %s (%s)", name, url)
            break
        else:
            raise DatasetError(f"could not fetch {name}: " + "; ".join(failures) + OFFLINE_HINT)
    return dest


def _download_verified(url: str, target: Path, spec: IdxFile, timeout_s: float) -> None:
    if not url.startswith(("http://", "https://", "file://")):
        raise DatasetError(f"{url}: unsupported URL scheme")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked above
            shutil.copyfileobj(resp, out, _MD5_CHUNK)
        actual = md5sum(tmp)
        if actual != spec.md5:
            raise DatasetError(f"downloaded md5 {actual} != published {spec.md5}")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_data(data_dir: str | Path | None = None, *, allow_fetch: bool = True) -> Path:
    """Return a directory holding all four canonical files, fetching into the cache if needed.

    An explicitly given directory (argument or ``$FASHION_MNIST_DIR``) is never written to:
    a missing file there is an error naming it, since the user pointed us at that copy.
    """
    explicit = bool(data_dir) or bool(os.environ.get("FASHION_MNIST_DIR"))
    path = resolve_data_dir(data_dir)
    missing = missing_files(path) if path.is_dir() else list(_BY_NAME)
    if not missing:
        return path
    if explicit or not allow_fetch:
        raise DatasetError(f"{path}: missing Fashion-MNIST file(s): {', '.join(missing)}")
    return fetch(path)


_cache: dict[tuple[str, Split], tuple[np.ndarray, np.ndarray]] = {}
_cache_lock = threading.Lock()


def load_split(
    split: Split, data_dir: str | Path | None = None, *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8 of one split.

    Arrays are cached per process (read-only views), so a warm function instance pays the
    decompression once. ``verify`` checks the published md5 of each file first.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = resolve_data_dir(data_dir)
    key = (str(path), split)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    img_spec, lbl_spec = FILES[split]
    if verify:
        verify_file(path / img_spec.name, img_spec)
        verify_file(path / lbl_spec.name, lbl_spec)
    images = read_idx(path / img_spec.name, expected_shape=img_spec.shape)
    labels = read_idx(path / lbl_spec.name, expected_shape=lbl_spec.shape)
    if int(labels.max()) >= NUM_CLASSES:
        raise DatasetError(f"{path / lbl_spec.name}: label {int(labels.max())} out of range")
    images.flags.writeable = False
    labels.flags.writeable = False
    with _cache_lock:
        _cache[key] = (images, labels)
    return images, labels


def dataset_md5s(split: Split) -> dict[str, str]:
    """Published md5 of each file of ``split``, for provenance in model metadata."""
    return {spec.name: spec.md5 for spec in FILES[split]}


def clear_cache() -> None:
    """Forget cached arrays and verification results (tests use this)."""
    with _cache_lock:
        _cache.clear()
    with _verified_lock:
        _verified.clear()
