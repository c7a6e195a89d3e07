"""Correctness checks of a run: each workload's own (from its spec), plus failed invocations.

The report names no workload: a workload's spec says what its combined results must satisfy
(:attr:`~serverless_hpc.workloads.spec.WorkloadSpec.check`), and this module asks each spec
about its own batches.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from serverless_hpc import workloads
from serverless_hpc.report.data import RunData
from serverless_hpc.workloads.spec import Check


def checks(data: RunData) -> list[Check]:
    """Every workload's checks over its batches, then "no failed invocations"."""
    by_workload: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in data.batches:
        by_workload[b["workload"]].append(b)
    specs = workloads.specs()
    out: list[Check] = []
    for name, batches in by_workload.items():
        spec = specs.get(name)
        if spec is None:  # a workload this installation does not know: nothing to judge by
            continue
        out.extend(spec.check(batches))
    failed = sum(1 for r in data.records if not r["ok"])
    out.append(
        Check("no failed invocations", failed == 0, f"{failed} of {len(data.records)} failed")
    )
    return out
