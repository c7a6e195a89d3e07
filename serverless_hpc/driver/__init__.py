"""The one benchmark driver: plan workload x target x fan-out x repeats, run, record.

Split along a run's life (see docs/design.md, "The driver"):

* :mod:`.config`: the options, their defaults and bounds (:class:`BenchConfig`);
* :mod:`.plan`: the batches of each target, and how many invocations they make;
* :mod:`.lifecycle`: the run directory's claim, the targets, the record file;
* :mod:`.context`, :mod:`.fanout`, :mod:`.chained`, :mod:`.rounds`: how a batch runs;
* :mod:`.batchline`: what a finished batch says in ``batches.jsonl``;
* :mod:`.run`: the run from start to ``run.json``'s last word.

The driver writes measurements; the statistics are :mod:`serverless_hpc.report`'s.
"""

from serverless_hpc.driver.config import (
    CONFIRM_ABOVE,
    MODES,
    BenchConfig,
    BenchError,
    RecordsUnwritable,
    RunStopped,
    default,
    new_run_id,
)
from serverless_hpc.driver.lifecycle import check_out_dir, claim_out_dir
from serverless_hpc.driver.plan import (
    Batch,
    check_plan_size,
    count_epochs,
    count_invocations,
    plan,
    plan_size,
)
from serverless_hpc.driver.run import RunResult, run

__all__ = [
    "CONFIRM_ABOVE",
    "MODES",
    "Batch",
    "BenchConfig",
    "BenchError",
    "RecordsUnwritable",
    "RunResult",
    "RunStopped",
    "check_out_dir",
    "check_plan_size",
    "claim_out_dir",
    "count_epochs",
    "count_invocations",
    "default",
    "new_run_id",
    "plan",
    "plan_size",
    "run",
]
