"""Object stores for model bundles and results: a local directory now, S3 in the cloud.

A store is addressed by a URI (a plain path, ``file://...`` or ``s3://bucket/prefix``) so the
same request works on every platform; each adapter tells the workloads which URI to use
through ``$SHPC_STORE``.

The interface (:class:`Store`) lives in :mod:`serverless_hpc.store_base`, which this module
and :mod:`serverless_hpc.store_s3` both import; S3 imports nothing else of the stores, so
the dependency runs one way: :func:`open_store` loads the S3 store only for an ``s3://`` URI.

A model bundle is three objects under ``models/<name>/<version>/``: ``model.keras``,
``model.tflite`` and ``metadata.json``, plus a ``models/<name>/LATEST`` pointer written last,
so a reader never sees a half-written bundle as the latest one.

The pointer moves only on behalf of a live run: an instance started by a driver
(``$SHPC_PARENT_PID``, ``$SHPC_RUN_LOCK``) that outlived it (the driver was killed) keeps the
bundle it wrote but does not make it ``latest`` (:func:`check_publisher`), so the next run
never silently uses a model that no run recorded.

A model name becomes a key part, so it must be one safe path segment
(:func:`check_model_name`), checked wherever a key is built from it. Local objects are read
only if they are regular files (:mod:`serverless_hpc.safeio`): a FIFO planted as ``LATEST``
is refused at once instead of blocking the reader. :func:`check_store_uri` parses a store URI
and :func:`check_store` also asks an S3 bucket whether it can be reached, so a bad
``--store`` is refused before a run starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from serverless_hpc import safeio
from serverless_hpc.contract import PLATFORM_ERROR, ContractError, InvalidRequest, NotFound
from serverless_hpc.host import cache_dir
from serverless_hpc.redact import register_url
from serverless_hpc.store_base import KEY_PART_RE, Store, check_key

log = logging.getLogger(__name__)

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LATEST: Final = "latest"
#: Longest store URI accepted (a path or s3://bucket/prefix).
MAX_STORE_URI_LENGTH: Final = 1024


def default_store_uri() -> str:
    """``$SHPC_STORE`` or ``~/.cache/serverless-hpc/store``."""
    env = os.environ.get("SHPC_STORE")
    if env:
        return env
    return str(cache_dir() / "store")


class LocalStore(Store):
    """A directory on this machine; writes go through a temporary file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise InvalidRequest(f"model store {self.uri} is a file, not a directory")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write via a temporary file in the same directory, then rename over the target."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        """Read the file for ``key``."""
        path = self._path(key)
        try:
            return safeio.read_bytes(path)
        except FileNotFoundError:
            raise NotFound(f"{self.uri}: no object {key!r}") from None
        except safeio.NotRegularFile as exc:
            raise ContractError(
                f"{self.uri}: object {key!r} is {exc.strerror} ({path})", error_type=PLATFORM_ERROR
            ) from None

    def exists(self, key: str) -> bool:
        """Whether the file for ``key`` exists."""
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        """The file itself."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"{self.uri}: no object {key!r}")
        return path

    def delete_prefix(self, prefix: str) -> int:
        """Remove the directory for ``prefix`` and everything in it."""
        path = self._path(prefix)
        if not path.is_dir():
            return 0
        count = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return count


def open_store(uri: str | None = None) -> Store:
    """Open the store a URI names (default :func:`default_store_uri`).

    ``s3://`` URIs need the ``aws`` extra; the S3 implementation is imported only then.
    """
    uri = uri or default_store_uri()
    register_url(uri)  # a password in a URI is a secret wherever the URI is shown
    if uri.startswith("s3://"):
        try:
            from serverless_hpc.store_s3 import S3Store
        except ImportError as exc:
            raise InvalidRequest(f"store {uri!r} needs the S3 support ({exc})") from exc
        return S3Store.from_uri(uri)
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    if "://" in uri:
        raise InvalidRequest(f"unsupported store URI {uri!r} (use a path or s3://bucket/prefix)")
    return LocalStore(Path(uri))


def check_store_uri(uri: str) -> str:
    """``uri`` if it names a store :func:`open_store` can open; :class:`InvalidRequest` saying
    what is wrong otherwise (empty, too long, an unknown scheme, a bad bucket or prefix).

    Parsing only: nothing is created or contacted (see :func:`check_store`).
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidRequest("the store URI is empty (give a directory or s3://bucket/prefix)")
    if len(uri) > MAX_STORE_URI_LENGTH:
        raise InvalidRequest(
            f"the store URI is {len(uri)} characters long, more than {MAX_STORE_URI_LENGTH}"
        )
    register_url(uri)
    if not uri.isprintable():
        raise InvalidRequest("the store URI holds control characters")
    if uri.startswith("s3://"):
        from serverless_hpc.store_s3 import parse_s3_uri

        parse_s3_uri(uri)
        return uri
    path = uri.removeprefix("file://")
    if not path.strip():
        raise InvalidRequest(f"store URI {uri!r} names no directory")
    if "://" in path:
        raise InvalidRequest(f"unsupported store URI {uri!r} (use a path or s3://bucket/prefix)")
    return uri


def check_store(uri: str) -> Store:
    """The store ``uri`` names, checked before a run relies on it: the URI parses
    (:func:`check_store_uri`), a local root is a directory if it exists, and an S3 bucket
    exists and can be reached. :class:`InvalidRequest` saying what is wrong otherwise."""
    check_store_uri(uri)
    store = open_store(uri)
    check = getattr(store, "check_reachable", None)
    if check is not None:
        check()
    return store


def check_model_name(name: str) -> str:
    """Validate a model name: one path segment of letters, digits and ``_.-``, not starting
    with ``.`` (it becomes a key part: ``../x`` or ``a/b`` would name another place)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidRequest(
            f"field 'model' must match {_NAME_RE.pattern} (letters, digits, _.-), got {name!r}"
        )
    return name


def new_version() -> str:
    """A sortable, unique bundle version: UTC timestamp plus random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def bundle_key(name: str, version: str, filename: str) -> str:
    """Object key of one file of a model bundle (every part checked: no key can leave
    ``models/<name>/``)."""
    return check_key(f"models/{check_model_name(name)}/{version}/{filename}")


class PublishRefused(ContractError):
    """The run that asked for a model is over: its bundle is kept but not made ``latest``."""

    error_type = PLATFORM_ERROR


def check_publisher() -> None:
    """Raise :class:`PublishRefused` unless the run this process works for is still alive.

    A function instance started by a local driver gets ``$SHPC_PARENT_PID`` (the driver) and
    ``$SHPC_RUN_LOCK`` (the run directory's lock, held by the driver for the run's life). If
    the driver is gone (this process was re-parented) or the lock is free, the run cannot
    record what this instance produces. Outside a local run (a Lambda function, a test) the
    variables are unset and nothing is checked.
    """
    parent = os.environ.get("SHPC_PARENT_PID")
    if parent and parent.isdigit() and os.getppid() != int(parent):
        raise PublishRefused(
            f"the driver (pid {parent}) that started this instance is gone; the model is "
            "kept but not made latest"
        )
    lock = os.environ.get("SHPC_RUN_LOCK")
    if lock:
        from serverless_hpc.rundir import lock_is_held

        if not lock_is_held(Path(lock)):
            raise PublishRefused(
                f"the run holding {lock} has ended; the model is kept but not made latest"
            )


def save_bundle(store: Store, name: str, files: dict[str, bytes], metadata: dict[str, Any]) -> str:
    """Write a model bundle and then move the ``LATEST`` pointer to it; return its version.

    :class:`PublishRefused` (the bundle written, ``LATEST`` untouched) when the run that asked
    for it is over (:func:`check_publisher`).
    """
    check_model_name(name)
    version = new_version()
    for filename, data in files.items():
        store.put_bytes(bundle_key(name, version, filename), data)
    meta = dict(metadata, name=name, version=version, files=sorted(files))
    store.put_bytes(bundle_key(name, version, "metadata.json"), json.dumps(meta, indent=2).encode())
    check_publisher()  # as late as possible: the window left is one rename
    store.put_bytes(f"models/{check_model_name(name)}/LATEST", version.encode())
    log.info("saved model bundle %s/%s to %s", name, version, store.uri)
    return version


def resolve_version(store: Store, name: str, version: str = LATEST) -> str:
    """The concrete version ``version`` refers to (``latest`` follows the pointer)."""
    check_model_name(name)
    if version != LATEST:
        if not KEY_PART_RE.match(version):
            raise InvalidRequest(f"field 'version' is not a valid version: {version!r}")
        return version
    try:
        raw = store.get_bytes(f"models/{check_model_name(name)}/LATEST")
    except NotFound:
        raise NotFound(
            f"no model bundle {name!r} in {store.uri}; run the workload that writes it first"
        ) from None
    latest = raw.decode("utf-8", "replace").strip()
    if not KEY_PART_RE.match(latest) or latest in (".", ".."):
        raise ContractError(
            f"{store.uri}: models/{name}/LATEST is corrupt ({raw[:40]!r}); train again",
            error_type=PLATFORM_ERROR,
        )
    return latest


def load_metadata(store: Store, name: str, version: str) -> dict[str, Any]:
    """The ``metadata.json`` of one bundle; :class:`ContractError` naming it when corrupt."""
    key = bundle_key(name, version, "metadata.json")
    raw = store.get_bytes(key)
    try:
        meta: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(
            f"{store.uri}: {key} is corrupt ({exc}); train again or point LATEST at a good version",
            error_type=PLATFORM_ERROR,
        ) from None
    if not isinstance(meta, dict):
        raise ContractError(
            f"{store.uri}: {key} is corrupt (not a JSON object)", error_type=PLATFORM_ERROR
        )
    return meta


def check_bundle(store: Store, name: str, version: str) -> dict[str, Any]:
    """Check that bundle ``name/version`` is whole: metadata readable, every file it lists
    present. Returns the metadata; :class:`NotFound` or :class:`ContractError` naming what
    is missing or corrupt (a ``LATEST`` naming a deleted version, a torn copy)."""
    if not store.exists(bundle_key(name, version, "metadata.json")):
        raise NotFound(
            f"{store.uri}: model {name!r} version {version!r} (named by LATEST or the request) "
            "has no metadata.json: the bundle is missing or incomplete"
        )
    meta = load_metadata(store, name, version)
    files = meta.get("files", [])
    if not isinstance(files, list):
        raise ContractError(
            f"{store.uri}: {bundle_key(name, version, 'metadata.json')} is corrupt "
            "('files' is not a list)",
            error_type=PLATFORM_ERROR,
        )
    missing = [f for f in files if not store.exists(bundle_key(name, version, str(f)))]
    if missing:
        raise NotFound(
            f"{store.uri}: model {name!r} version {version!r} lacks {', '.join(missing)}"
        )
    return meta
