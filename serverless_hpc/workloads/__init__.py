"""The workloads, by name. Modules are imported on first use so a driver loads none of them."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

from serverless_hpc.contract import InvalidRequest

#: Training epochs by default: here, not in the train module, so the CLI's help can state it
#: without importing numpy and pydantic.
DEFAULT_TRAIN_EPOCHS: Final = 15

#: Workload name -> module implementing ``preload()`` and ``run(params, ctx) -> Output``.
WORKLOADS: Final = {
    "train": "serverless_hpc.workloads.train",
    "classify": "serverless_hpc.workloads.classify",
    "dataproc": "serverless_hpc.workloads.dataproc",
    "sleep": "serverless_hpc.workloads.sleep",
}


def check_name(name: object) -> str:
    """Return ``name`` if it is a known workload, else raise :class:`InvalidRequest`.

    Targets call this before starting anything for a request, without importing the module.
    """
    if not isinstance(name, str) or name not in WORKLOADS:
        raise InvalidRequest(
            f"field 'workload': unknown workload {name!r} (known: {', '.join(sorted(WORKLOADS))})"
        )
    return name


def get(name: str) -> ModuleType:
    """The module of workload ``name``; :class:`InvalidRequest` for an unknown name."""
    return importlib.import_module(WORKLOADS[check_name(name)])
