"""Stage the dataset a request needs from the dataset bucket into a local directory.

Runs inside a Lambda function (into ``/tmp``) and on the comparison instance. Which splits a
request reads is its workload spec's answer (:attr:`WorkloadSpec.splits`), so a new workload
stages what it declares with no edit here. A file is fetched only when it is not already in
place, so a warm function instance stages nothing; each is checked against its published md5
before it is moved into place, so a bad download never looks like data.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from serverless_hpc import workloads
from serverless_hpc.data.catalog import FILES, SPLITS, Split

log = logging.getLogger(__name__)


def dataset_splits(workload: object, params: object) -> tuple[Split, ...]:
    """The dataset splits a request for ``workload`` with ``params`` reads.

    Empty when the request is malformed (unknown workload, parameters that are not an
    object, a split that does not exist): staging then fetches nothing and the shared
    handler's validation names the bad field.
    """
    known = workloads.specs()
    if not isinstance(workload, str) or workload not in known:
        return ()
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        return ()
    try:
        wanted = set(known[workload].splits(params))
    except (ValueError, TypeError, KeyError):
        return ()  # parameters the spec cannot read: the handler's validation says which
    return tuple(s for s in SPLITS if s in wanted)


def stage_dataset(
    dataset_uri: str, dest: Path, splits: Iterable[Split], *, client: Any = None
) -> list[str]:
    """Download the files of ``splits`` missing from ``dest``; return the names fetched.

    Raises :class:`~serverless_hpc.data.fashion_mnist.DatasetError` when a download fails or
    a file's md5 is not the published one (the bad file is never left in ``dest``).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_hpc.data import fashion_mnist as fm
    from serverless_hpc.store_s3 import default_client, parse_s3_uri

    bucket, prefix = parse_s3_uri(dataset_uri)
    s3 = client or default_client()
    dest.mkdir(parents=True, exist_ok=True)
    fetched: list[str] = []
    for split in splits:
        for spec in FILES[split]:
            target = dest / spec.name
            if target.is_file():
                continue
            key = f"{prefix}/{spec.name}" if prefix else spec.name
            fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", dir=dest)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                s3.download_file(bucket, key, tmp_name)
                actual = fm.md5sum(tmp)
                if actual != spec.md5:
                    raise fm.DatasetError(
                        f"s3://{bucket}/{key}: md5 {actual} is not the published {spec.md5}"
                    )
                tmp.replace(target)
            except (BotoCoreError, ClientError) as exc:
                raise fm.DatasetError(f"cannot fetch s3://{bucket}/{key}: {exc}") from exc
            finally:
                tmp.unlink(missing_ok=True)
            fetched.append(spec.name)
    if fetched:
        log.info("staged %s from %s into %s", ", ".join(fetched), dataset_uri, dest)
    return fetched
