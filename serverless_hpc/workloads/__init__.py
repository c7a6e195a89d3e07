"""The workloads, discovered from this package: every subpackage that declares a ``SPEC``.

Only the specs are imported here (plain data, no numpy or pydantic); a workload's function
code (``<name>/function.py``) is imported on first use, so a driver loads none of it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType

from serverless_hpc.contract import InvalidRequest
from serverless_hpc.workloads.spec import WorkloadSpec


@cache
def specs() -> dict[str, WorkloadSpec]:
    """Every workload's spec by name, in plan order (then by name)."""
    found: list[WorkloadSpec] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, WorkloadSpec):
            continue
        if spec.name != info.name:
            raise RuntimeError(f"workload package {info.name!r} declares name {spec.name!r}")
        found.append(spec)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


def names() -> tuple[str, ...]:
    """Every workload name, in plan order."""
    return tuple(specs())


def default_names() -> tuple[str, ...]:
    """The workloads of ``shpc bench``'s default plan, in plan order."""
    return tuple(n for n, s in specs().items() if s.default)


def spec(name: object) -> WorkloadSpec:
    """The spec of workload ``name``; :class:`InvalidRequest` naming the field if unknown.

    Targets call this (or :func:`check_name`) before starting anything for a request.
    """
    known = specs()
    if not isinstance(name, str) or name not in known:
        raise InvalidRequest(
            f"field 'workload': unknown workload {name!r} (known: {', '.join(sorted(known))})"
        )
    return known[name]


def check_name(name: object) -> str:
    """Return ``name`` if it is a known workload, else raise :class:`InvalidRequest`."""
    return spec(name).name


def get(name: str) -> ModuleType:
    """The function module of workload ``name`` (``preload``, ``run``)."""
    return importlib.import_module(spec(name).function_module)
