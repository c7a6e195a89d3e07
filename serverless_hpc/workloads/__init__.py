"""The workloads, by name. Modules are imported on first use so a driver loads none of them."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

from serverless_hpc.contract import InvalidRequest

#: Workload name -> module implementing ``preload()`` and ``run(params, ctx) -> Output``.
WORKLOADS: Final = {
    "train": "serverless_hpc.workloads.train",
    "classify": "serverless_hpc.workloads.classify",
    "dataproc": "serverless_hpc.workloads.dataproc",
}


def get(name: str) -> ModuleType:
    """The module of workload ``name``; :class:`InvalidRequest` for an unknown name."""
    try:
        path = WORKLOADS[name]
    except KeyError:
        raise InvalidRequest(
            f"field 'workload': unknown workload {name!r} (known: {', '.join(sorted(WORKLOADS))})"
        ) from None
    return importlib.import_module(path)
