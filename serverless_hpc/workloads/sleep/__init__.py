"""``sleep``: the platform-overhead microbenchmark, holding memory if asked (not run by default)."""

from __future__ import annotations

from serverless_hpc.workloads.spec import Option, Panel, WorkloadSpec

SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="sleeps, optionally holding memory: the platform's own overhead",
    function_module=f"{__name__}.function",
    memory_mb=2048,
    timeout_s=900.0,
    order=90,
    default=False,
    options=(
        Option("seconds", float, "how long to sleep", 0.0, 900.0),
        Option("alloc_mb", int, "memory to hold while sleeping (MB)", 0, 10_240),
    ),
    panels=(Panel.COLD_WARM, Panel.BREAKDOWN),
)
