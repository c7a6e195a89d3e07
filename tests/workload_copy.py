"""A copy of a workload package under a new name, for as long as a test needs it.

The proof that a workload is one package: copying an existing one under a new name must make
a working workload everywhere (the CDK app, ``shpc ow apply``, the Lambda target), with no
other edit. The copy goes into the real ``serverless_hpc/workloads/`` directory (that is what
discovery reads), the registry's cache is cleared, and on exit the copy, its imported
modules and the cache go again, whatever happened.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serverless_hpc import workloads
from serverless_hpc.workloads.spec import WorkloadSpec


@contextmanager
def copied_workload(source: str, name: str) -> Iterator[WorkloadSpec]:
    """Copy workload package ``source`` to ``name``; yield the copy's spec; remove it after."""
    package_dir = Path(workloads.__file__).resolve().parent
    dest = package_dir / name
    if dest.exists():
        raise RuntimeError(f"{dest} exists already; remove it (a previous run was killed?)")
    shutil.copytree(
        package_dir / source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    importlib.invalidate_caches()
    workloads.specs.cache_clear()
    try:
        yield workloads.spec(name)
    finally:
        shutil.rmtree(dest)
        module = f"{workloads.__name__}.{name}"
        for loaded in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
            del sys.modules[loaded]
        importlib.invalidate_caches()
        workloads.specs.cache_clear()
