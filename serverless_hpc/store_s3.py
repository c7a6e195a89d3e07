"""The S3 implementation of :class:`~serverless_hpc.store_base.Store` (``s3://bucket/prefix``).

A single ``PutObject`` is atomic (readers see the old or the new object), which is what the
bundle protocol needs: bundle files are written first and the ``LATEST`` pointer last.
:meth:`S3Store.local_path` downloads into a local cache directory (``$SHPC_S3_CACHE``,
default ``/tmp/shpc-s3-cache``, the only writable place on Lambda) through a temporary file
and a rename, and reuses the cached file afterwards: it is meant for the immutable, versioned
bundle files, so a warm function instance downloads a model once. Mutable keys (``LATEST``)
are read with :meth:`get_bytes`, which always goes to S3.

boto3 is imported here only; this module is loaded by :func:`serverless_hpc.store.open_store`
when an ``s3://`` URI is used, so local runs never need it. The credentials the client uses
are registered as secrets (:mod:`serverless_hpc.redact`) when it is made.

:func:`parse_s3_uri` checks the bucket name against S3's naming rules and every prefix part
against the key rules; :meth:`S3Store.check_reachable` asks S3 once (``HeadBucket``, short
timeouts, two attempts) so a run with a bucket that does not exist or cannot be reached is
refused before it starts.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from serverless_hpc.contract import InvalidRequest, NotFound
from serverless_hpc.redact import register
from serverless_hpc.store_base import Store, check_key

log = logging.getLogger(__name__)

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: S3's bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens, starting and
#: ending with a letter or digit.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Bounds on the up-front reachability check (a run must not wait minutes to be refused).
CHECK_CONNECT_TIMEOUT_S = 5.0
CHECK_READ_TIMEOUT_S = 10.0


def _register_credentials(session: Any) -> None:
    """Register the credentials ``session`` resolves (none: nothing to hide)."""
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        register(frozen.access_key, frozen.secret_key, frozen.token)


@functools.lru_cache(maxsize=1)
def default_client() -> Any:
    """One S3 client per process (clients are thread-safe and costly to create).

    Tests that swap the AWS backend (moto) call ``default_client.cache_clear()``.
    """
    import boto3
    from botocore.config import Config

    session = boto3.Session()
    _register_credentials(session)
    return session.client(
        "s3",
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32),
    )


def cache_root() -> Path:
    """Where downloaded objects are cached: ``$SHPC_S3_CACHE`` or ``/tmp/shpc-s3-cache``."""
    env = os.environ.get("SHPC_S3_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "shpc-s3-cache"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (prefix may be empty).

    :class:`InvalidRequest` for a bucket name S3 would refuse or a prefix that is not a
    valid key (an empty part, ``.``, ``..``, characters outside the key rules).
    """
    if not uri.startswith("s3://"):
        raise InvalidRequest(f"not an s3:// URI: {uri[:100]!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise InvalidRequest(f"s3 URI {uri[:100]!r} names no bucket")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidRequest(
            f"s3 URI {uri[:100]!r}: {bucket[:70]!r} is not a valid bucket name (3-63 "
            "lower-case letters, digits, dots and hyphens)"
        )
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except InvalidRequest:
            raise InvalidRequest(
                f"s3 URI {uri[:100]!r}: the prefix is not a valid key (parts of letters, "
                "digits and _.=- only; no empty part, '.' or '..')"
            ) from None
    return bucket, prefix


def _is_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in _MISSING_CODES


class S3Store(Store):
    """Objects under ``s3://bucket/prefix/``; see the module docstring for the caching rule."""

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, cache_dir: Path | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self.cache_dir = (cache_dir or cache_root()) / bucket / self.prefix

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        """The store an ``s3://bucket/prefix`` URI names."""
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix)

    @property
    def client(self) -> Any:
        """The boto3 S3 client (the process-wide default unless one was given)."""
        if self._client is None:
            self._client = default_client()
        return self._client

    def check_reachable(self) -> None:
        """Ask S3 whether the bucket exists and can be reached with these credentials.

        One ``HeadBucket`` with short timeouts (:data:`CHECK_CONNECT_TIMEOUT_S`,
        :data:`CHECK_READ_TIMEOUT_S`, two attempts); :class:`InvalidRequest` saying why not
        (no such bucket, access denied, no credentials, no connection).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client
        try:
            if client is None:
                import boto3
                from botocore.config import Config

                session = boto3.Session()
                _register_credentials(session)
                client = session.client(
                    "s3",
                    config=Config(
                        connect_timeout=CHECK_CONNECT_TIMEOUT_S,
                        read_timeout=CHECK_READ_TIMEOUT_S,
                        retries={"mode": "standard", "max_attempts": 2},
                    ),
                )
            client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            why = {
                "404": "does not exist",
                "NoSuchBucket": "does not exist",
                "403": "cannot be accessed with these credentials",
                "AccessDenied": "cannot be accessed with these credentials",
            }.get(code, f"cannot be reached ({exc})")
            raise InvalidRequest(f"bucket {self.bucket!r} {why}") from None
        except BotoCoreError as exc:
            raise InvalidRequest(f"bucket {self.bucket!r} cannot be reached ({exc})") from None

    def object_key(self, key: str) -> str:
        """The S3 key of store key ``key`` (validated)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        """One ``PutObject``: atomic for readers."""
        self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        """One ``GetObject``; :class:`NotFound` when the key does not exist."""
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"{self.uri}: no object {key!r}") from None
            raise
        body: bytes = resp["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        """One ``HeadObject``."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def local_path(self, key: str) -> Path:
        """A cached local copy of ``key`` (downloaded once; meant for immutable keys)."""
        from botocore.exceptions import ClientError

        path = self.cache_dir / self.object_key(key).removeprefix(self.prefix).lstrip("/")
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.object_key(key), tmp)
            Path(tmp).replace(path)
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"{self.uri}: no object {key!r}") from None
            raise
        finally:
            Path(tmp).unlink(missing_ok=True)
        log.info("downloaded %s/%s to %s", self.uri, key, path)
        return path

    def delete_prefix(self, prefix: str) -> int:
        """List the keys under ``prefix/`` and delete them in batches of 1000 (S3's limit)."""
        base = self.object_key(prefix).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        )
        deleted = 0
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if not keys:
                continue
            resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"{self.uri}: could not delete {len(errors)} object(s) under {prefix!r}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
            deleted += len(keys)
        return deleted
