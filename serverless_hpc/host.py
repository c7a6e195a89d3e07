"""Facts about the machine a process runs on: its CPUs, memory and the project's cache.

A layer below everything that asks (workloads size their threads, local targets their pools,
records describe the environment, the data, the model store and the report keep their
caches), so none of them imports another for it.
"""

from __future__ import annotations

import os
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware, unlike ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_memory_mb() -> int | None:
    """Physical memory of this machine in MB (None where the OS does not say)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return int(pages * size / 2**20)


def cache_dir() -> Path:
    """The project's cache on this machine: ``$SHPC_CACHE_DIR``, else
    ``~/.cache/serverless-hpc`` (fetched data, the local model store, compiled report
    templates). Not created here."""
    root = os.environ.get("SHPC_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "serverless-hpc"
