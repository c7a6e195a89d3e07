"""The S3 implementation of :class:`~serverless_hpc.store_base.Store` (``s3://bucket/prefix``).

A single ``PutObject`` is atomic (readers see the old or the new object), which is what the
bundle protocol needs: bundle files are written first and the ``LATEST`` pointer last.
:meth:`S3Store.local_path` downloads into a local cache directory (``$SHPC_S3_CACHE``,
default ``/tmp/shpc-s3-cache``, the only writable place on Lambda) through a temporary file
and a rename, and reuses the cached file afterwards: it is meant for the immutable, versioned
bundle files, so a warm function instance downloads a model once. Mutable keys (``LATEST``)
are read with :meth:`get_bytes`, which always goes to S3.

boto3 is imported here only; this module is loaded by :func:`serverless_hpc.store.open_store`
when an ``s3://`` URI is used, so local runs never need it.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from serverless_hpc.contract import InvalidRequest, NotFound
from serverless_hpc.store_base import Store, check_key

log = logging.getLogger(__name__)

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@functools.lru_cache(maxsize=1)
def default_client() -> Any:
    """One S3 client per process (clients are thread-safe and costly to create).

    Tests that swap the AWS backend (moto) call ``default_client.cache_clear()``.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32),
    )


def cache_root() -> Path:
    """Where downloaded objects are cached: ``$SHPC_S3_CACHE`` or ``/tmp/shpc-s3-cache``."""
    env = os.environ.get("SHPC_S3_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "shpc-s3-cache"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (prefix may be empty)."""
    if not uri.startswith("s3://"):
        raise InvalidRequest(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise InvalidRequest(f"s3 URI {uri!r} names no bucket")
    return bucket, prefix.strip("/")


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
