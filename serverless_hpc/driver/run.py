"""Running a plan: the run's life from claiming its directory to ``run.json``'s last word.

Experiments go prepare -> run -> process (as in SeBS):

* **prepare** (:mod:`.lifecycle`): claim the directory, check that a model exists where a
  workload that reads one will need it, create and open every target, so a misconfigured one
  fails the run before any time is spent;
* **run**: for each target, its planned batches (:mod:`.plan`) in order, each by its
  strategy (:mod:`.fanout`, :mod:`.chained`, :mod:`.rounds`); a workload that writes a model
  pins the version it wrote in its readers' requests; each invocation is appended to
  ``records.jsonl`` the moment it completes, each batch to ``batches.jsonl``
  (:mod:`.batchline`);
* **process**: :mod:`serverless_hpc.report` turns the run directory into the answer.

See docs/design.md, "A request's way", for the whole flow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from serverless_hpc import workloads
from serverless_hpc.driver.batchline import batch_summary, clean_scratch, training_summary
from serverless_hpc.driver.chained import run_chain
from serverless_hpc.driver.config import BenchConfig, RecordsUnwritable, config_json
from serverless_hpc.driver.context import BatchRun, RunContext
from serverless_hpc.driver.fanout import run_fanout, threads_needed
from serverless_hpc.driver.lifecycle import (
    check_model_available,
    check_out_dir,
    claim_out_dir,
    close_records,
    open_records,
    open_targets,
)
from serverless_hpc.driver.plan import (
    Batch,
    count_epochs,
    count_invocations,
    model_writers,
    plan,
    with_version,
)
from serverless_hpc.driver.rounds import clean_job_scratch, in_rounds, rounds_summary, run_rounds
from serverless_hpc.rundir import (
    RecordWriter,
    RunLock,
    append_batch,
    environment,
    paths,
    write_run_meta,
)
from serverless_hpc.targets.base import Target
from serverless_hpc.workloads.spec import WorkloadSpec

log = logging.getLogger(__name__)

#: How a batch is run: one of the strategies, chosen by :func:`strategy_of`.
Strategy = Callable[[RunContext, Batch], BatchRun]


def strategy_of(spec: WorkloadSpec, batch: Batch) -> Strategy:
    """The strategy that runs ``batch``: rounds for a data-parallel training or a job its
    spec plans in rounds, a chain for a resumable workload, else the fan-out."""
    if batch.workers > 1 or in_rounds(batch):
        return run_rounds
    if spec.resumable:
        return run_chain
    return run_fanout


@dataclass(slots=True)
class RunResult:
    """What a finished run produced."""

    out: Path
    records: int
    failed: int
    batches: list[dict[str, Any]]
    skipped: list[dict[str, str]] = field(default_factory=list)


def run(
    cfg: BenchConfig,
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    lock: RunLock | None = None,
    epoch_progress: Callable[[int], None] | None = None,
    on_epochs: Callable[[int], None] | None = None,
) -> RunResult:
    """Run the whole plan; records and batches are written as they complete.

    Progress is told in two counts, each with its own total: ``progress``/``on_total``
    invocations (a chained training counts one, when it ends), ``epoch_progress``/
    ``on_epochs`` the epochs of chained trainings (its legs are not known ahead).

    The run holds ``cfg.out``'s lock (:func:`claim_out_dir`) throughout: pass ``lock`` when
    the caller claimed it already (and releases it), else it is claimed and released here.
    Refuses (:class:`BenchError`, nothing written) an ``out`` held by another live run or
    holding another run's records. On ``KeyboardInterrupt`` (Ctrl-C, or :class:`RunStopped`
    for SIGTERM/SIGHUP) the targets are closed first (cutting off invocations in flight and
    killing their instances), invocations that come back after it are not recorded (the
    user cut them off; the platform did not fail them), ``run.json`` says ``aborted``, and
    the interrupt is re-raised. A record that cannot be written (disk full) stops the run
    the same way and raises :class:`RecordsUnwritable`. When ``train`` was planned on a
    target and produced no model, that target's classify batches are skipped and listed
    under ``"skipped"`` in ``run.json``.
    """
    own_lock = lock is None
    if lock is None:
        lock = claim_out_dir(cfg.out, cfg.run_id)
    try:
        return _run_locked(cfg, lock, (progress, on_total), (epoch_progress, on_epochs))
    finally:
        if own_lock:
            lock.release()


#: A progress callback and the callback told its total.
_Bar = tuple[Callable[[int], None] | None, Callable[[int], None] | None]


def _run_locked(cfg: BenchConfig, lock: RunLock, bar: _Bar, epoch_bar: _Bar) -> RunResult:
    progress, on_total = bar
    check_out_dir(cfg.out)
    check_model_available(cfg)
    # Instances check this lock before they publish a model: one that outlives the run
    # (its driver killed) cannot move the store's latest.
    cfg = replace(cfg, settings=replace(cfg.settings, run_lock=lock.path))
    # Exit order matters (an ExitStack unwinds last-in first-out): the targets close first,
    # so invocations in flight return promptly; then the invocation threads are joined
    # (queued ones cancelled); then the record file is closed, after its last writer.
    # The record file is created only once every target opened, so a misconfigured target
    # leaves no records.jsonl behind and the corrected command can reuse the same --out.
    with ExitStack() as stack:
        io_stack = stack.enter_context(ExitStack())
        opened = open_targets(cfg, stack.enter_context(ExitStack()))
        writer = open_records(paths(cfg.out).records)
        io_stack.callback(close_records, writer)
        # threads for what may be in flight at once (each target's max_parallel), never
        # the plan's widest fan-out
        pool = ThreadPoolExecutor(
            max_workers=threads_needed(cfg, opened.values()), thread_name_prefix="inv"
        )
        io_stack.callback(pool.shutdown, wait=True, cancel_futures=True)

        state = _RunState(
            cfg=cfg,
            pool=pool,
            writer=writer,
            progress=progress,
            epoch_progress=epoch_bar[0],
            opened=opened,
            on_total=on_total,
            total=count_invocations(
                cfg,
                lambda n: opened[n].supports_forced_cold,
                lambda n: opened[n].supports_memory,
                lambda n: opened[n].kind == "vm",
            ),
        )
        epochs = count_epochs(cfg, lambda n: opened[n].supports_memory)
        if on_total:
            on_total(state.total)
        if epoch_bar[1] and epochs:
            epoch_bar[1](epochs)
        state.meta.update(
            {
                "run_id": cfg.run_id,
                "config": config_json(cfg),
                "environment": environment(),
                "targets": {n: t.describe() for n, t in opened.items()},
                "started": time.time(),
                # the fewest records a complete run leaves (less what it skips): the report
                # says when some are missing, the dashboard counts progress against it
                "planned_invocations": state.total,
                # the epochs of chained trainings (their legs are not known ahead)
                "planned_epochs": epochs,
                "skipped": state.skipped,
                "memory_ignored_by": [
                    n for n, t in opened.items() if cfg.memory_mb and not t.supports_memory
                ],
            }
        )
        try:
            state.write_meta()
            for name, target in opened.items():
                state.run_target(name, target)
        except BaseException as exc:
            # Ctrl-C above all: whatever stops the run cuts off the invocations in flight,
            # and their replies say nothing about the platform, so none is recorded.
            state.interrupted.set()
            by = getattr(exc, "signal_name", type(exc).__name__)
            log.warning("run stopped (%s): closing the targets", by)
            state.meta["aborted"] = {"time": time.time(), "by": by, "records": writer.count}
            try:
                state.write_meta()
            except OSError as meta_exc:  # the disk that failed the records fails this too
                log.error(  # noqa: TRY400 - the cause is the run's, already being raised
                    "could not mark %s aborted: %s", paths(cfg.out).meta, meta_exc
                )
            if isinstance(exc, OSError):
                raise RecordsUnwritable(
                    f"the run stopped: its files in {cfg.out} could not be written "
                    f"({exc.strerror or exc}); the {writer.count} records written before "
                    "are kept"
                ) from exc
            raise
    state.meta["finished"] = time.time()
    try:
        state.write_meta()
    except OSError as exc:
        raise RecordsUnwritable(
            f"the run finished but {paths(cfg.out).meta} could not be written "
            f"({exc.strerror or exc}); its {writer.count} records are kept"
        ) from exc
    return RunResult(
        out=cfg.out,
        records=writer.count,
        failed=state.failed,
        batches=state.batches,
        skipped=state.skipped,
    )


#: Why a model reader is skipped on a target whose planned writer produced no model.
_NO_MODEL_REASON: Final = (
    "{writer} on {where} produced no model version; using an older ('latest') model "
    "would measure a different model than the run trained"
)


@dataclass(slots=True)
class _RunState:
    """What one run shares between its targets' batches."""

    cfg: BenchConfig
    pool: ThreadPoolExecutor
    writer: RecordWriter
    progress: Callable[[int], None] | None
    epoch_progress: Callable[[int], None] | None = None
    opened: Mapping[str, Target] = field(default_factory=dict)
    on_total: Callable[[int], None] | None = None
    total: int = 0  # invocations planned; shrinks when batches are skipped
    interrupted: threading.Event = field(default_factory=threading.Event)
    meta: dict[str, Any] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: int = 0
    #: model -> the version the run's last training wrote, for the targets that do not
    #: train (``--train-on``): they read it from the store they share with it.
    model_versions: dict[str, str] = field(default_factory=dict)

    def write_meta(self) -> None:
        """Replace ``run.json`` whole: a failed write leaves the previous version."""
        write_run_meta(self.cfg.out, self.meta)

    def run_target(self, name: str, target: Target) -> None:
        """Every planned batch of one target, in order; a model's writer pins its readers."""
        cfg = self.cfg
        ctx = RunContext(
            cfg,
            target,
            self.writer,
            self.pool,
            self.interrupted,
            self.progress,
            self.epoch_progress,
        )
        specs = workloads.specs()
        writers = model_writers(cfg)
        trains = cfg.trains_on(name)
        # model -> the version this run wrote on this target (or, where it does not train,
        # the version the run's training targets wrote)
        versions: dict[str, str] = {} if trains else dict(self.model_versions)
        where = "this target" if trains else "the training targets (--train-on)"
        for planned in plan(
            cfg, name, supports_memory=target.supports_memory, vm=target.kind == "vm"
        ):
            batch = planned
            spec = specs[batch.workload]
            if batch.mode == "cold" and not target.supports_forced_cold:
                log.info("%s does not force cold starts; skipping cold batches", name)
                continue  # not in the plan's counts either
            model = spec.model if spec.reads_models else None
            if model in writers and model not in versions:
                # neither counted nor waited for: the bar still ends at 100%, and run.json
                # says how many records a complete run now leaves
                self.total -= len(batch.requests)
                self.meta["planned_invocations"] = self.total
                if self.on_total:
                    self.on_total(self.total)
                self.skip(
                    name, spec.name, _NO_MODEL_REASON.format(writer=writers[model], where=where)
                )
                continue
            if model in versions:
                batch = with_version(batch, versions[model])
            strategy = strategy_of(spec, batch)
            recs, results = strategy(ctx, batch)
            self.writer.sync()  # the group commit's batch end: the batch's records on disk
            self.failed += sum(1 for r in recs if not r.ok)
            summary = batch_summary(batch, recs, results)
            # what could run at once on a function platform: a batch of more shards than this
            # queued the rest in the driver (on a VM, shards share its cores: that is the VM)
            if target.kind != "vm":
                summary["max_parallel"] = target.max_parallel
            if spec.resumable or batch.workers > 1:  # a training: a chain or in rounds
                summary.update(training_summary(recs, results))
                clean_scratch(target, batch, results)
            elif strategy is run_rounds:  # a job in rounds through the store
                summary.update(rounds_summary(recs))
                if results:  # it ended: its scratch objects are no longer needed
                    clean_job_scratch(target, batch, cfg.run_id)
            self.batches.append(summary)
            append_batch(cfg.out, summary)
            if spec.writes_models and spec.model and summary.get("model_version"):
                versions[spec.model] = summary["model_version"]
                self.model_versions[spec.model] = summary["model_version"]

    def skip(self, target: str, workload: str, reason: str) -> None:
        """Note (once per target and workload) that planned batches were not run, and why."""
        entry = {"target": target, "workload": workload, "reason": reason}
        if entry not in self.skipped:
            self.skipped.append(entry)
            log.error("%s: skipping %s: %s", target, workload, reason)
        self.write_meta()
