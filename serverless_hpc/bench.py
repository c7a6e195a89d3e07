"""The one benchmark driver: plan workload x target x fan-out x repeats, run, record, report.

Experiments go prepare -> run -> process (as in SeBS):

* **prepare**: create and open every target first, so a misconfigured one fails the run
  before any time is spent; check that a model exists where a workload that reads one will
  need it and no planned workload writes it.
* **run**: for each target, the planned workloads in their specs' order: a workload that
  writes a model first (the version it wrote is then pinned in that target's readers'
  requests, so every fan-out uses the same model), then each fanned-out workload at each
  fan-out: its input is split into ``shards`` contiguous ranges and all of them are sent at
  once; each invocation is appended to ``records.jsonl`` the moment it completes, and each
  batch to ``batches.jsonl`` with its makespan and the result its spec's ``combine`` makes
  of it (classify's accuracy over all shards, dataproc's reduce and its digest...).
* **process**: :mod:`serverless_hpc.report` turns the records into the summary, plots and
  the HTML report.

Memory is a plan dimension: with ``memory_mb`` (``--memory-mb 512,1024,1769``) every batch
runs at each size on the targets that can set memory (sizes outermost, so a cloud function is
reconfigured once per size); the others run the plan once and say they ignore it.

Modes: ``natural`` lets the platform decide what is cold (first use, scale-out);
``cold`` forces a cold start on every invocation, on targets that support it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from serverless_hpc import chain, workloads
from serverless_hpc import targets as target_registry
from serverless_hpc.contract import PLATFORM_ERROR, ContractError, error_response
from serverless_hpc.invocation import InvocationRecord, Outcome
from serverless_hpc.records import RecordWriter, environment
from serverless_hpc.redact import scrub_response
from serverless_hpc.rundir import RunDirError, RunLock
from serverless_hpc.rundir import check_out_dir as _check_out_dir
from serverless_hpc.targets.base import Target, TargetSettings, TimedOutcome
from serverless_hpc.workloads.spec import StoreAccess, WorkloadSpec, scratch_prefix

log = logging.getLogger(__name__)

MODES: Final = ("natural", "cold")
#: Functions one data-parallel training may use (the train workload's own bound).
MAX_TRAIN_WORKERS: Final = 64
#: The largest memory size any platform here offers (Lambda's 10,240 MB).
MAX_MEMORY_MB: Final = 10_240

#: The clock ``client_ms`` is measured with (nanoseconds; tests inject a fake one).
perf_ns: Callable[[], int] = time.perf_counter_ns

#: Upper bounds of the plan's options. A fan-out beyond Lambda's default regional concurrency
#: (1,000) would only queue; the repeat bounds keep a typo (1000000000) from planning a run
#: that never ends. Each message names its bound.
MAX_SHARDS: Final = 1000
MAX_REPEATS: Final = 10_000
MAX_TRAIN_REPEATS: Final = 100
MAX_COLD_REPEATS: Final = 1000
#: A plan of more invocations than this runs only with ``--yes`` (``confirmed=True``).
CONFIRM_ABOVE: Final = 5000


class BenchError(Exception):
    """The plan is invalid or a target cannot be used; the message says which and why."""


class RunStopped(KeyboardInterrupt):
    """The driver was told to stop (SIGTERM, SIGHUP): handled as Ctrl-C is.

    A ``KeyboardInterrupt`` so that everything that cleans up after Ctrl-C does so here too;
    ``signal_name`` is recorded as who aborted the run.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class RecordsUnwritable(BenchError):
    """The run's own files could not be written (disk full, read-only): the run stopped."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """A whole experiment, validated on construction.

    ``params`` holds each workload's request parameters on top of its spec's
    ``plan_params`` (``--param WORKLOAD.KEY=VALUE`` and the CLI's shorthands such as
    ``--images``); fanned-out workloads split their input ``shards`` ways.
    """

    out: Path
    targets: tuple[str, ...] = ("local-faas", "standalone")
    workloads: tuple[str, ...] = field(default_factory=workloads.default_names)
    shards: tuple[int, ...] = (1, 5, 10, 15)
    repeats: int = 6
    train_repeats: int = 1
    #: Functions a data-parallel training runs on (each a plan point; 1: one function).
    train_workers: tuple[int, ...] = (1,)
    #: Targets that run the long-running workloads (``train``); empty: every target. They
    #: come first in ``targets``; the others' readers are pinned to the model version the
    #: last training wrote, which they find where they share its store (the local targets).
    train_on: tuple[str, ...] = ()
    modes: tuple[str, ...] = ("natural", "cold")
    cold_repeats: int = 2
    #: Memory sizes to sweep (MB); empty: each target's own setting, no sweep.
    memory_mb: tuple[int, ...] = ()
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    settings: TargetSettings = field(default_factory=TargetSettings)
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.targets:
            raise BenchError("--targets: name at least one target")
        unknown = [t for t in self.targets if t not in target_registry.TARGETS]
        if unknown:
            known = ", ".join(sorted(target_registry.TARGETS))
            raise BenchError(f"--targets: unknown target(s) {', '.join(unknown)} (known: {known})")
        specs = workloads.specs()
        bad = [w for w in self.workloads if w not in specs]
        if bad or not self.workloads:
            raise BenchError(f"--workloads: unknown or empty {bad} (known: {', '.join(specs)})")
        stray = sorted(set(self.params) - set(self.workloads))
        if stray:
            raise BenchError(f"--param: workload(s) {', '.join(stray)} not in --workloads")
        if not self.shards or any(s < 1 for s in self.shards):
            raise BenchError(f"--shards must be positive integers, got {list(self.shards)}")
        self._check_repeats()
        bad_mem = [m for m in self.memory_mb if not 128 <= m <= MAX_MEMORY_MB]
        if bad_mem or len(set(self.memory_mb)) != len(self.memory_mb):
            raise BenchError(
                f"--memory-mb: sizes must be distinct integers from 128 to {MAX_MEMORY_MB} MB, "
                f"got {list(self.memory_mb)}"
            )
        self._check_train_workers()
        self._check_train_on()
        if any(m not in MODES for m in self.modes) or not self.modes:
            raise BenchError(f"--modes must be from {MODES}, got {list(self.modes)}")
        for name in self.workloads:
            try:
                limit = specs[name].max_shards(self.params_of(name))
            except (ValueError, KeyError, TypeError) as exc:
                raise BenchError(f"--param {name}: {exc}") from None
            if limit is not None and max(self.shards) > limit:
                raise BenchError(
                    f"--shards: {max(self.shards)} shards exceed the {limit} items of {name}"
                )
        if max(self.shards) > MAX_SHARDS:
            raise BenchError(
                f"--shards must be at most {MAX_SHARDS} (Lambda's default concurrency), "
                f"got {list(self.shards)}"
            )

    def _check_train_on(self) -> None:
        stray = [t for t in self.train_on if t not in self.targets]
        if stray:
            raise BenchError(
                f"--train-on: {', '.join(stray)} not in --targets ({', '.join(self.targets)})"
            )
        trains = [self.trains_on(t) for t in self.targets]
        if trains != sorted(trains, reverse=True):
            raise BenchError(
                "--train-on: list the training targets first in --targets (the others read "
                "the model they write)"
            )

    def trains_on(self, target: str) -> bool:
        """Whether ``target`` runs the long-running workloads (``--train-on``)."""
        return not self.train_on or target in self.train_on

    def _check_repeats(self) -> None:
        for option, value, bound in (
            ("--repeats", self.repeats, MAX_REPEATS),
            ("--train-repeats", self.train_repeats, MAX_TRAIN_REPEATS),
            ("--cold-repeats", self.cold_repeats, MAX_COLD_REPEATS),
        ):
            if not 1 <= value <= bound:
                raise BenchError(f"{option} must be >= 1 and at most {bound}, got {value}")

    def _check_train_workers(self) -> None:
        if not self.train_workers or any(
            not 1 <= w <= MAX_TRAIN_WORKERS for w in self.train_workers
        ):
            raise BenchError(
                f"--train-workers must be >= 1 and at most {MAX_TRAIN_WORKERS}, "
                f"got {list(self.train_workers)}"
            )
        if max(self.train_workers) > 1 and not any(s.data_parallel for s in self.specs()):
            raise BenchError("--train-workers > 1 needs a data-parallel workload in --workloads")

    def params_of(self, workload: str) -> dict[str, Any]:
        """``workload``'s request parameters: its spec's plan params, then the user's."""
        return {**workloads.specs()[workload].plan_params, **self.params.get(workload, {})}

    def specs(self) -> list[WorkloadSpec]:
        """The planned workloads' specs, in plan order."""
        return [s for n, s in workloads.specs().items() if n in self.workloads]


@dataclass(frozen=True, slots=True)
class Batch:
    """One fan-out: a workload's input split into ``len(requests)`` invocations sent at once."""

    target: str
    workload: str
    shards: int
    repeat: int
    mode: str
    requests: tuple[dict[str, Any], ...]
    items: tuple[int, ...]
    memory_mb: int | None = None  # the sweep's size; None: the target's own setting
    #: Functions of a data-parallel training (1: not data-parallel).
    workers: int = 1


def memory_sizes(cfg: BenchConfig, supports_memory: bool) -> tuple[int | None, ...]:
    """The sizes a target runs the plan at: the sweep, or once at its own setting."""
    return cfg.memory_mb if cfg.memory_mb and supports_memory else (None,)


def plan(cfg: BenchConfig, target: str, *, supports_memory: bool = False) -> Iterator[Batch]:
    """The batches to run on one target, in plan order (memory size, then natural before cold).

    A long-running workload (``train``) runs ``train_repeats`` times, natural mode only, at
    each ``train_workers`` when it is data-parallel; a fanned-out one at every fan-out, mode
    and repeat; any other once per mode and repeat. With a memory sweep and
    ``supports_memory``, all of that at each size in turn.
    """
    for memory_mb in memory_sizes(cfg, supports_memory):
        for batch in _plan_one_size(cfg, target):
            yield replace(batch, memory_mb=memory_mb)


def _plan_one_size(cfg: BenchConfig, target: str) -> Iterator[Batch]:
    for spec in cfg.specs():
        params = cfg.params_of(spec.name)
        if spec.long_running:
            if not cfg.trains_on(target):
                continue
            for workers in cfg.train_workers if spec.data_parallel else (1,):
                for r in range(cfg.train_repeats):
                    yield _batch(cfg, spec, target, params, 1, r, "natural", workers)
            continue
        for mode in cfg.modes:
            repeats = cfg.repeats if mode == "natural" else cfg.cold_repeats
            for shards in cfg.shards if spec.fanned_out else (1,):
                for r in range(repeats):
                    yield _batch(cfg, spec, target, params, shards, r, mode)


def _batch(
    cfg: BenchConfig,
    spec: WorkloadSpec,
    target: str,
    params: Mapping[str, Any],
    shards: int,
    repeat: int,
    mode: str,
    workers: int = 1,
) -> Batch:
    requests, items = [], []
    for i, (p, n) in enumerate(spec.requests(params, shards)):
        if spec.resumable or workers > 1:  # its checkpoints' keys: unique to this training
            p = {**p, "chain": chain.chain_id(cfg.run_id, target, repeat, workers)}  # noqa: PLW2901
        req: dict[str, Any] = {"workload": spec.name, "params": p, "run_id": cfg.run_id}
        if spec.fanned_out:
            req["shard"] = i
        requests.append(req)
        items.append(n)
    # A data-parallel training is planned from one request, but it fans out to its workers:
    # its records and its summary row say ``shards`` = workers, so its batch does too.
    fanout = workers if workers > 1 else shards
    return Batch(
        target, spec.name, fanout, repeat, mode, tuple(requests), tuple(items), workers=workers
    )


def count_invocations(
    cfg: BenchConfig,
    supports_cold: Callable[[str], bool],
    supports_memory: Callable[[str], bool] = lambda _: False,
    *,
    records: bool = False,
) -> int:
    """How many steps the progress bar counts for the whole plan, without building it.

    A chained training counts its epochs (the bar moves per epoch); with ``records`` it
    counts the fewest records it can leave instead (one leg), so that the count is what a
    complete run's records.jsonl holds at least.
    """
    total = 0
    for target in cfg.targets:
        per_size = 0
        for spec in cfg.specs():
            if spec.long_running:
                if not cfg.trains_on(target):
                    continue
                params = cfg.params_of(spec.name)
                epochs = int(params.get("epochs", 1))
                for w in cfg.train_workers if spec.data_parallel else (1,):
                    # a chain ticks per epoch; a data-parallel training per invocation
                    if w > 1:
                        per_size += cfg.train_repeats * chain.rounds(params) * (w + 1)
                    else:
                        per_leg = epochs if spec.resumable and not records else 1
                        per_size += cfg.train_repeats * per_leg
                continue
            fanout = sum(cfg.shards) if spec.fanned_out else 1
            if spec.rounds is not None:
                params = cfg.params_of(spec.name)
                fanout = sum(_round_invocations(spec, params, s) or s for s in cfg.shards)
            for mode in cfg.modes:
                if mode == "cold" and not supports_cold(target):
                    continue
                per_size += fanout * (cfg.repeats if mode == "natural" else cfg.cold_repeats)
        total += per_size * len(memory_sizes(cfg, supports_memory(target)))
    return total


def batch_summary(
    batch: Batch, records: Sequence[InvocationRecord], results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Makespan and the combined result of one fan-out batch.

    ``results`` are the successful invocations' full results (before the record's
    compaction); the workload's spec combines them.
    """
    ok = [r for r in records if r.ok]
    sizes = {r.outcome.memory_mb for r in records}
    memory_mb = batch.memory_mb
    if memory_mb is None and len(sizes) == 1:
        memory_mb = next(iter(sizes))  # the target's own setting, as it reported it
    flags = [r.outcome.oversubscribed for r in records if r.outcome.oversubscribed is not None]
    out: dict[str, Any] = {
        "run_id": records[0].run_id if records else None,
        "target": batch.target,
        "workload": batch.workload,
        "memory_mb": memory_mb,
        "oversubscribed": any(flags) if flags else None,
        "shards": batch.shards,
        "workers": batch.workers,
        "repeat": batch.repeat,
        "mode": batch.mode,
        "invocations": len(records),
        "failed": len(records) - len(ok),
        "items": sum(batch.items),
        "makespan_ms": (max(r.t_recv for r in records) - min(r.t_send for r in records)) * 1e3
        if records
        else None,
        "straggler_ratio": straggler_ratio([r.client_ms for r in ok]),
    }
    spec = workloads.specs()[batch.workload]
    if results and (len(ok) == len(records) or not spec.combine_needs_all):
        try:
            out.update(spec.combine(results))
        except (ValueError, KeyError, TypeError) as exc:  # a malformed result: say so, go on
            log.exception("%s %s batch could not be combined", batch.target, batch.workload)
            out["combine_error"] = f"{type(exc).__name__}: {exc}"
    return out


def straggler_ratio(latencies_ms: Sequence[float]) -> float | None:
    """The slowest invocation over the median one (1.0: no straggler); None below 2 values."""
    if len(latencies_ms) < 2:
        return None
    median = statistics.median(latencies_ms)
    return max(latencies_ms) / median if median > 0 else None


def _record(
    cfg: BenchConfig,
    batch: Batch,
    index: int,
    outcome: Outcome,
    client_ms: float,
    t_send: float,
    t_recv: float,
    env: dict[str, Any],
    **context: Any,
) -> InvocationRecord:
    """The record of one invocation; ``context`` sets ``leg``/``round``/``role``/``shards``/
    ``items`` for the invocations of chains and data-parallel rounds."""
    if outcome.memory_mb is None and batch.memory_mb is not None:
        outcome.memory_mb = batch.memory_mb  # configured for the batch, even if it never ran
    resp = scrub_response(outcome.response)  # a platform may echo credentials in an error
    if resp is not outcome.response:
        outcome = replace(outcome, response=resp)
    return InvocationRecord(
        run_id=cfg.run_id,
        target=batch.target,
        workload=batch.workload,
        shard=index,
        shards=context.pop("shards", batch.shards),
        items=context.pop("items", batch.items[index] if index < len(batch.items) else 0),
        repeat=batch.repeat,
        mode=batch.mode,
        client_ms=client_ms,
        t_send=t_send,
        t_recv=t_recv,
        outcome=outcome,
        result=_compact(batch.workload, resp.get("result")) if outcome.ok else None,
        env=env,
        **context,
    )


def _compact(workload: str, result: Any) -> dict[str, Any] | None:
    """The part of a result its workload keeps in the record."""
    if not isinstance(result, dict):
        return None
    return workloads.specs()[workload].compact(result)


def _invoke_timed(
    target: Target, request: dict[str, Any], timeout_s: float, force_cold: bool
) -> tuple[Outcome, float, float, float]:
    t_send = time.time()
    t0 = perf_ns()
    try:
        outcome = target.invoke(request, timeout_s=timeout_s, force_cold=force_cold)
    except Exception as exc:  # a target bug must not lose the run: record it as a failure
        log.exception("target %s raised instead of returning an outcome", target.name)
        outcome = Outcome(
            response=error_response(PLATFORM_ERROR, f"{type(exc).__name__}: {exc}"), cold=False
        )
    client_ms = (perf_ns() - t0) / 1e6
    return outcome, client_ms, t_send, time.time()


def _invoke_batch_timed(
    target: Target, batch: Batch, timeout_s: float, force_cold: bool
) -> list[TimedOutcome]:
    """Run a batch on a batch-native target; a target failure becomes failed outcomes."""
    t_send = time.time()
    t0 = perf_ns()
    try:
        timed = target.invoke_batch(batch.requests, timeout_s=timeout_s, force_cold=force_cold)
    except Exception as exc:  # record every request of the batch as failed and carry on
        log.exception("target %s failed a whole batch", target.name)
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if len(timed) == len(batch.requests):
            return timed
        problem = f"{target.name} returned {len(timed)} outcomes for {len(batch.requests)} requests"
        log.error("%s", problem)
    client_ms = (perf_ns() - t0) / 1e6
    failed = Outcome(response=error_response(PLATFORM_ERROR, problem), cold=False)
    return [TimedOutcome(failed, client_ms, t_send, time.time()) for _ in batch.requests]


@dataclass(slots=True)
class RunResult:
    """What a finished run produced."""

    out: Path
    records: int
    failed: int
    batches: list[dict[str, Any]]
    skipped: list[dict[str, str]] = field(default_factory=list)


def check_out_dir(out: Path) -> None:
    """Refuse a run directory whose records a run would mix with, or whose files it would
    overwrite (see :func:`serverless_hpc.rundir.check_out_dir`)."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} exists and is not a directory")
    try:
        _check_out_dir(out)
    except RunDirError as exc:
        raise BenchError(str(exc)) from None


def claim_out_dir(out: Path, run_id: str = "") -> RunLock:
    """Claim ``out`` for one run (an exclusive lock held until released), then check it.

    :class:`BenchError` when another live run holds it, it cannot be created, or it holds
    another run's records or a user's files; nothing is written then.
    """
    try:
        lock = RunLock.claim(out, run_id=run_id)
    except RunDirError as exc:
        raise BenchError(str(exc)) from None
    try:
        check_out_dir(out)
    except BaseException:
        lock.release()
        raise
    return lock


def plan_size(cfg: BenchConfig) -> int:
    """Invocations the plan makes at most (cold batches and memory sizes counted on every
    target), computed arithmetically: a huge plan is refused at once, not after minutes of
    enumeration."""
    return count_invocations(cfg, lambda _name: True, lambda _name: True)


def check_plan_size(cfg: BenchConfig, *, confirmed: bool) -> int:
    """The plan's size; :class:`BenchError` when it is over :data:`CONFIRM_ABOVE` unconfirmed."""
    size = plan_size(cfg)
    if size > CONFIRM_ABOVE and not confirmed:
        raise BenchError(
            f"the plan makes up to {size:,} invocations, over {CONFIRM_ABOVE:,}: check "
            "--shards/--repeats, or add --yes to run it"
        )
    return size


def _model_writers(cfg: BenchConfig) -> dict[str, str]:
    """Model name -> the planned workload that writes it."""
    return {s.model: s.name for s in cfg.specs() if s.writes_models and s.model}


def _check_model_available(cfg: BenchConfig) -> None:
    """Fail before running when a workload needs a model that no step will produce."""
    if not any(t in target_registry.LOCAL_TARGETS for t in cfg.targets):
        return
    from serverless_hpc.store import open_store

    try:  # a store that is a file would fail every invocation that touches it
        open_store(cfg.settings.store_uri)
    except ContractError as exc:
        raise BenchError(f"--store / $SHPC_STORE: {exc}") from exc
    writers = _model_writers(cfg)
    for spec in cfg.specs():
        if not spec.reads_models or not spec.model or spec.model in writers:
            continue
        from serverless_hpc.store import LATEST, check_bundle, open_store, resolve_version

        producers = [s.name for s in workloads.specs().values() if s.writes_models]
        add = " or ".join(map(repr, producers))
        try:
            store = open_store(cfg.settings.store_uri)
            check_bundle(store, spec.model, resolve_version(store, spec.model, LATEST))
        except ContractError as exc:
            raise BenchError(
                f"{spec.name} needs a trained model: {exc}. Add {add} to "
                f"--workloads (or run 'shpc bench --workloads {producers[0]}' once)."
            ) from exc
        except OSError as exc:
            raise BenchError(
                f"the model store {cfg.settings.store_uri or '(default)'} cannot be read: "
                f"{exc.strerror or exc} ({exc.filename or ''}); check --store / $SHPC_STORE"
            ) from exc


def _check_memory(cfg: BenchConfig, opened: Mapping[str, Target]) -> None:
    """Check a sweep's sizes against each platform's limits before anything runs or is
    written; say which targets run once because they cannot set memory."""
    if not cfg.memory_mb:
        return
    for name, target in opened.items():
        if not target.supports_memory:
            log.warning("%s cannot set memory: it runs the plan once and ignores --memory-mb", name)
            continue
        try:
            target.check_memory(cfg.memory_mb)
        except target_registry.TargetUnavailable as exc:
            raise BenchError(str(exc)) from exc


def run(
    cfg: BenchConfig,
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    lock: RunLock | None = None,
) -> RunResult:
    """Run the whole plan; records and batches are written as they complete.

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
        return _run_locked(cfg, lock, progress, on_total)
    finally:
        if own_lock:
            lock.release()


def _run_locked(
    cfg: BenchConfig,
    lock: RunLock,
    progress: Callable[[int], None] | None,
    on_total: Callable[[int], None] | None,
) -> RunResult:
    check_out_dir(cfg.out)
    _check_model_available(cfg)
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
        targets_stack = stack.enter_context(ExitStack())
        created: dict[str, Target] = {}
        for name in cfg.targets:
            try:
                created[name] = target_registry.create(name, cfg.settings)
            except target_registry.TargetUnavailable as exc:
                raise BenchError(f"target {name!r} is unavailable: {exc}") from exc
        try:  # before anything is opened: a mistyped option costs nothing
            target_registry.check_options(cfg.settings.extra, list(created.values()))
        except target_registry.TargetUnavailable as exc:
            raise BenchError(str(exc)) from exc
        opened: dict[str, Target] = {}
        for name, target in created.items():
            try:
                targets_stack.enter_context(target)
            except target_registry.TargetUnavailable as exc:
                raise BenchError(f"target {name!r} is unavailable: {exc}") from exc
            opened[name] = target
        _check_memory(cfg, opened)
        writer = _open_records(cfg.out / "records.jsonl")
        io_stack.callback(_close_records, writer)
        pool = ThreadPoolExecutor(
            max_workers=max(*cfg.shards, *cfg.train_workers, 1), thread_name_prefix="inv"
        )
        io_stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        state = _RunState(
            cfg=cfg,
            pool=pool,
            writer=writer,
            progress=progress,
            on_total=on_total,
            total=count_invocations(
                cfg,
                lambda n: opened[n].supports_forced_cold,
                lambda n: opened[n].supports_memory,
            ),
        )
        if on_total:
            on_total(state.total)
        state.meta.update(
            {
                "run_id": cfg.run_id,
                "config": _config_json(cfg),
                "environment": environment(),
                "targets": {n: t.describe() for n, t in opened.items()},
                "started": time.time(),
                # the fewest records a complete run leaves: the report says when some are missing
                "planned_invocations": count_invocations(
                    cfg,
                    lambda n: opened[n].supports_forced_cold,
                    lambda n: opened[n].supports_memory,
                    records=True,
                ),
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
                    "could not mark %s aborted: %s", cfg.out / "run.json", meta_exc
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
            f"the run finished but {cfg.out / 'run.json'} could not be written "
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
        """Replace ``run.json`` whole (a temporary file renamed over it): a failed write
        leaves the previous version, never half of one."""
        path = self.cfg.out / "run.json"
        tmp = path.with_name(f".run.json.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.meta, indent=2, allow_nan=False), encoding="utf-8")
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def run_target(self, name: str, target: Target) -> None:
        """Every planned batch of one target, in order; a model's writer pins its readers."""
        cfg = self.cfg
        env = {**environment(target.describe()), "target": name}
        specs = workloads.specs()
        writers = _model_writers(cfg)
        trains = cfg.trains_on(name)
        # model -> the version this run wrote on this target (or, where it does not train,
        # the version the run's training targets wrote)
        versions: dict[str, str] = {} if trains else dict(self.model_versions)
        where = "this target" if trains else "the training targets (--train-on)"
        for planned in plan(cfg, name, supports_memory=target.supports_memory):
            batch = planned
            spec = specs[batch.workload]
            model = spec.model if spec.reads_models else None
            if model in writers and model not in versions:
                reason = _NO_MODEL_REASON.format(writer=writers[model], where=where)
                self.skip(name, spec.name, reason)
                self.total -= len(batch.requests)
                if self.on_total:
                    self.on_total(self.total)  # the progress bar still ends at 100%
                continue
            if model in versions:
                batch = with_version(batch, versions[model])
            if batch.mode == "cold" and not target.supports_forced_cold:
                log.info("%s does not force cold starts; skipping cold batches", name)
                continue
            run = _run_batch
            if batch.workers > 1 or _in_rounds(batch):
                run = _run_rounds
            elif spec.resumable:
                run = _run_chain
            recs, results = run(
                cfg, target, batch, self.pool, self.writer, env, self.progress, self.interrupted
            )
            self.failed += sum(1 for r in recs if not r.ok)
            summary = batch_summary(batch, recs, results)
            if spec.resumable or batch.workers > 1:
                summary.update(_training_summary(recs, results))
                _clean_scratch(target, batch, results)
            elif _in_rounds(batch):
                summary.update(_rounds_summary(recs))
                if results:  # the job ended: its scratch objects are no longer needed
                    _clean_job_scratch(target, batch, cfg.run_id)
            self.batches.append(summary)
            with (cfg.out / "batches.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(summary) + "\n")
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


def with_version(batch: Batch, version: str) -> Batch:
    """``batch`` with every request pinned to model ``version``."""
    reqs = tuple({**r, "params": {**r["params"], "version": version}} for r in batch.requests)
    return replace(batch, requests=reqs)


def _prepare(
    cfg: BenchConfig,
    target: Target,
    batch: Batch,
    writer: RecordWriter,
    env: dict[str, Any],
    progress: Callable[[int], None] | None,
    timeout_s: float,
) -> list[InvocationRecord] | None:
    """Set the batch's memory and prepare the target, outside the timing.

    When the memory cannot be set, nothing can run at this size: every request is recorded
    as failed with why, and those records are returned (else None).
    """
    force_cold = batch.mode == "cold"
    if batch.memory_mb is not None:
        try:  # reconfigure the function for this size, outside the timing
            target.set_memory(batch.workload, batch.memory_mb)
        except Exception as exc:  # nothing ran at this size: every request fails with why
            log.exception(
                "%s: cannot set %s to %d MB", target.name, batch.workload, batch.memory_mb
            )
            msg = f"cannot set the memory to {batch.memory_mb} MB: {type(exc).__name__}: {exc}"
            failed = Outcome(
                response=error_response(PLATFORM_ERROR, msg), cold=False, memory_mb=batch.memory_mb
            )
            now = time.time()
            recs = []
            for i in range(len(batch.requests)):
                rec = _record(cfg, batch, i, replace(failed), 0.0, now, now, env)
                writer.write(rec)
                recs.append(rec)
                if progress:
                    progress(1)
            return recs
    try:  # platform work for the batch (e.g. retiring warm environments), not timed
        target.prepare_batch(batch.workload, force_cold=force_cold, timeout_s=timeout_s)
    except Exception:  # the invocations will meet the same problem and record it
        log.exception("%s: preparing a %s batch failed", target.name, batch.workload)
    return None


def _run_batch(
    cfg: BenchConfig,
    target: Target,
    batch: Batch,
    pool: ThreadPoolExecutor,
    writer: RecordWriter,
    env: dict[str, Any],
    progress: Callable[[int], None] | None,
    interrupted: threading.Event,
) -> tuple[list[InvocationRecord], list[dict[str, Any]]]:
    """Run one batch; its records (by shard) and its successful full results (for combine)."""
    timeout_s = _timeout_of(cfg, batch.workload)
    force_cold = batch.mode == "cold"
    refused = _prepare(cfg, target, batch, writer, env, progress, timeout_s)
    if refused is not None:
        return refused, []
    lock = threading.Lock()
    done: list[tuple[InvocationRecord, dict[str, Any] | None]] = []

    def keep(index: int, outcome: Outcome, client_ms: float, t_send: float, t_recv: float) -> None:
        rec = _record(cfg, batch, index, outcome, client_ms, t_send, t_recv, env)
        writer.write(rec)
        full = outcome.response.get("result") if rec.ok else None
        with lock:
            done.append((rec, full if isinstance(full, dict) else None))
        if not rec.ok:
            log.warning("%s %s shard %d failed: %s", batch.target, batch.workload, index, rec.error)
        if progress:
            progress(1)

    # All shards are submitted at once, but no more than the target's max_parallel are in
    # flight: client_ms then measures the invocation, not a wait in the driver's queue, while
    # the batch's makespan still includes any such wait.
    in_flight = threading.BoundedSemaphore(max(1, target.max_parallel))

    def one(index: int) -> None:
        with in_flight:
            if interrupted.is_set():
                return  # queued behind the cap when the user interrupted: never sent
            outcome, client_ms, t_send, t_recv = _invoke_timed(
                target, batch.requests[index], timeout_s, force_cold
            )
        if interrupted.is_set():
            return  # cut off by the user (the target was closed under it), not a failure
        keep(index, outcome, client_ms, t_send, t_recv)

    if target.batch_native:
        timed = _invoke_batch_timed(target, batch, timeout_s, force_cold)
        for index, t in enumerate(timed):
            keep(index, t.outcome, t.client_ms, t.t_send, t.t_recv)
    else:
        futures = [pool.submit(one, i) for i in range(len(batch.requests))]
        for fut in futures:
            fut.result()
    done.sort(key=lambda d: d[0].shard)
    return [d[0] for d in done], [d[1] for d in done if d[1] is not None]


def _close_records(writer: RecordWriter) -> None:
    """Close the record file; a failure here (the disk that failed a write fails the final
    flush too) is logged, so it never hides the error that stopped the run."""
    try:
        writer.close()
    except OSError as exc:
        log.error("closing %s: %s", writer.path, exc.strerror or exc)  # noqa: TRY400


def _open_records(path: Path) -> RecordWriter:
    """The record file, opened for appending; :class:`RecordsUnwritable` if it cannot be."""
    try:
        return RecordWriter(path)
    except OSError as exc:
        raise RecordsUnwritable(f"cannot open {path}: {exc.strerror or exc}") from exc


def _config_json(cfg: BenchConfig) -> dict[str, Any]:
    s = cfg.settings
    return {
        "targets": list(cfg.targets),
        "workloads": list(cfg.workloads),
        "shards": list(cfg.shards),
        "repeats": cfg.repeats,
        "train_repeats": cfg.train_repeats,
        "train_workers": list(cfg.train_workers),
        "modes": list(cfg.modes),
        "cold_repeats": cfg.cold_repeats,
        "memory_mb": list(cfg.memory_mb),
        "params": {w: cfg.params_of(w) for w in cfg.workloads},
        "settings": {
            "data_dir": str(s.data_dir) if s.data_dir else None,
            "store_uri": s.store_uri,
            "memory_mb": s.memory_mb,
            "concurrency": s.concurrency,
            "keep_alive_s": s.keep_alive_s,
            "timeout_s": s.timeout_s,
        },
    }


def new_run_id() -> str:
    """A sortable run id: UTC time plus a random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


# -- trainings longer than one invocation (see serverless_hpc.chain) ------------------------


def _timeout_of(cfg: BenchConfig, workload: str) -> float:
    timeout_s = cfg.settings.timeout_s
    return workloads.specs()[workload].timeout_s if timeout_s is None else timeout_s


def _with_curve(
    rec: InvocationRecord, full: Mapping[str, Any] | None, legs: list[chain.Leg], t0: float
) -> None:
    """Put time and cost to accuracy so far in the record's result (its ``progress``)."""
    if rec.result is not None and full is not None and isinstance(full.get("progress"), list):
        rec.result = {**rec.result, "progress": chain.curve(legs, full["progress"], t0)}


def _error_type(outcome: Outcome) -> str | None:
    err = outcome.response.get("error")
    return err.get("type") if isinstance(err, dict) else None


def _run_chain(
    cfg: BenchConfig,
    target: Target,
    batch: Batch,
    pool: ThreadPoolExecutor,
    writer: RecordWriter,
    env: dict[str, Any],
    progress: Callable[[int], None] | None,
    interrupted: threading.Event,
) -> tuple[list[InvocationRecord], list[dict[str, Any]]]:
    """Invoke a resumable training until it is done (one record per leg, ``leg`` 0, 1, ...).

    The records and, when the chain finished, its final result (for the spec's combine).
    """
    request = batch.requests[0]
    epochs = int(request["params"].get("epochs", 1))
    timeout_s = _timeout_of(cfg, batch.workload)
    ticker = _Ticker(progress, epochs)
    refused = _prepare(cfg, target, batch, writer, env, None, timeout_s)
    if refused is not None:
        ticker.to(epochs)
        return refused, []
    state = chain.ChainState()
    legs: list[chain.Leg] = []
    recs: list[InvocationRecord] = []
    final: dict[str, Any] | None = None
    while not interrupted.is_set():
        with _watch_epochs(target, request, ticker):
            outcome, client_ms, t_send, t_recv = _invoke_timed(target, request, timeout_s, False)
        if interrupted.is_set():
            break  # cut off by the user, not a failure
        legs.append(chain.Leg(t_send, t_recv, outcome.cost_usd))
        rec = _record(cfg, batch, 0, outcome, client_ms, t_send, t_recv, env, leg=state.legs)
        full = outcome.response.get("result") if outcome.ok else None
        full = full if isinstance(full, dict) else None
        _with_curve(rec, full, legs, legs[0].t_send)
        writer.write(rec)
        recs.append(rec)
        step = chain.next_step(
            state, outcome.ok, full, _error_type(outcome), leg_bound=chain.max_legs(epochs)
        )
        ticker.to(state.epoch if step is not chain.Step.DONE else epochs)
        if step is chain.Step.DONE:
            final = full
            break
        if step is chain.Step.FAIL:
            log.error(
                "%s %s chain stopped after leg %d: %s (last: %s)",
                batch.target,
                batch.workload,
                state.legs - 1,
                state.why,
                rec.error or "ok",
            )
            break
        log.info(
            "%s %s: leg %d %s, resuming after epoch %d",
            batch.target,
            batch.workload,
            state.legs - 1,
            "stopped in time" if rec.ok else f"failed ({rec.error})",
            state.epoch,
        )
    ticker.to(epochs)  # the bar ends at 100% whatever happened
    return recs, [final] if final is not None else []


#: How often the driver reads a chain's progress note while a leg runs, seconds.
EPOCH_POLL_S: Final = 2.0


class _Ticker:
    """Moves the progress bar up to a count (a chain's epochs, a training's invocations),
    never back and never past its total, from any thread."""

    def __init__(self, progress: Callable[[int], None] | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def to(self, count: int) -> None:
        """Advance to ``count`` (no-op if already there)."""
        self._step(lambda done: count)

    def add(self, n: int = 1) -> None:
        """Advance by ``n``."""
        self._step(lambda done: done + n)

    def _step(self, new: Callable[[int], int]) -> None:
        with self._lock:
            step = min(new(self.done), self.total) - self.done
            if step <= 0:
                return
            self.done += step
        if self.progress:
            self.progress(step)


@contextmanager
def _watch_epochs(target: Target, request: Mapping[str, Any], ticker: _Ticker) -> Iterator[None]:
    """While a leg runs, poll its progress note in the store (where the driver reaches it:
    the local store, or S3 for ``lambda``) so the bar moves per epoch, not per leg. A store
    that fails otherwise than "not there yet" (credentials, network) ends the polling, said
    once: the bar then moves per leg."""
    key = _progress_key(request)
    store = target.scratch_store() if key and ticker.progress else None
    if store is None or key is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(EPOCH_POLL_S):
            try:
                note = json.loads(store.get_bytes(key))
                ticker.to(int(note["epoch"]))
            except (ContractError, OSError, ValueError, KeyError, TypeError):
                continue  # not written yet, or mid-replace: the next poll will see it
            except Exception as exc:  # noqa: BLE001 - a remote store's own errors (botocore)
                log.warning(
                    "%s: progress notes unreadable, the bar moves per leg: %s", target.name, exc
                )
                return

    watcher = threading.Thread(target=poll, name="epochs", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=EPOCH_POLL_S * 2)


def _progress_key(request: Mapping[str, Any]) -> str | None:
    note = workloads.spec(request.get("workload")).progress_note
    params = request.get("params")
    if note is None or not isinstance(params, Mapping):
        return None
    try:
        return note(params)
    except ContractError:
        return None


def _in_rounds(batch: Batch) -> bool:
    """Whether ``batch`` runs in rounds by its spec's :class:`RoundPlan` (a training over
    one worker runs as a chain instead; a plan of 0 rounds is a plain batch)."""
    spec = workloads.specs()[batch.workload]
    if spec.rounds is None or not batch.requests:
        return False
    workers = batch.workers if batch.workers > 1 else batch.shards
    return spec.rounds.rounds(batch.requests[0]["params"], workers) > 0


def _round_invocations(spec: WorkloadSpec, params: Mapping[str, Any], workers: int) -> int:
    """Invocations of one job of ``spec`` in rounds (0: it does not run in rounds);
    :class:`BenchError` naming the workload when its plan refuses the fan-out."""
    if spec.rounds is None:
        return 0
    try:
        count = 0
        for rnd in range(spec.rounds.rounds(params, workers)):
            reqs, combine = spec.rounds.requests(params, workers, rnd)
            count += len(reqs) + (combine is not None)
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"--param {spec.name} at {workers} shards: {exc}") from None
    return count


def job_id(batch: Batch, run_id: str) -> str:
    """The id of one job in rounds (its scratch objects' prefix): unique in the run."""
    memory = f"-m{batch.memory_mb}" if batch.memory_mb is not None else ""
    return f"{run_id or 'run'}/{batch.target}-{batch.mode}-s{batch.shards}-r{batch.repeat}{memory}"


def _run_rounds(
    cfg: BenchConfig,
    target: Target,
    batch: Batch,
    pool: ThreadPoolExecutor,
    writer: RecordWriter,
    env: dict[str, Any],
    progress: Callable[[int], None] | None,
    interrupted: threading.Event,
) -> tuple[list[InvocationRecord], list[dict[str, Any]]]:
    """A job in rounds (its spec's :class:`~serverless_hpc.workloads.spec.RoundPlan`; a
    data-parallel training's too): per round, the workers at once, then the round's combine
    step if it has one.

    A combine result with ``"status": "continue"`` continues, any other ends the job after
    it; after the plan's rounds the job ends. Its results (for the spec's combine) are the
    last combine step's, or the last round's workers' when it had none; none when a round
    failed. An invocation the platform stopped is retried (up to
    :data:`chain.MAX_FAILED_LEGS` attempts): a training's worker restarts its round from the
    round's stored start, any other round reads the same inputs again. Records carry
    ``round`` and ``role`` (``combine``, a request's ``phase``, else ``worker``); a worker's
    ``shard`` is its index, the combine step's is the worker count.
    """
    w = batch.workers if batch.workers > 1 else batch.shards
    spec = workloads.specs()[batch.workload]
    assert spec.rounds is not None  # only batches of such specs come here
    base_request = {k: v for k, v in batch.requests[0].items() if k != "shard"}
    params = dict(base_request["params"])
    if batch.workers == 1:  # a training has its chain id; any other job gets a job id
        params["job"] = job_id(batch, cfg.run_id)
    total = _round_invocations(spec, params, w)
    timeout_s = _timeout_of(cfg, batch.workload)
    force_cold = batch.mode == "cold"
    refused = _prepare(cfg, target, batch, writer, env, None, timeout_s)
    if refused is not None:
        _Ticker(progress, total).to(total)
        return refused, []
    lock = threading.Lock()
    recs: list[InvocationRecord] = []
    legs: list[chain.Leg] = []
    in_flight = threading.BoundedSemaphore(max(1, target.max_parallel))
    ticks = _Ticker(progress, total)  # here: one tick per invocation

    def attempt(request: dict[str, Any], index: int, rnd: int, role: str) -> dict[str, Any] | None:
        for tries in range(chain.MAX_FAILED_LEGS):
            with in_flight:
                if interrupted.is_set():
                    return None
                outcome, client_ms, t_send, t_recv = _invoke_timed(
                    target, request, timeout_s, force_cold
                )
            if interrupted.is_set():
                return None
            full = outcome.response.get("result") if outcome.ok else None
            rec = _record(
                cfg,
                batch,
                index,
                outcome,
                client_ms,
                t_send,
                t_recv,
                env,
                shards=w,
                items=int(full.get("items", 0)) if isinstance(full, dict) else 0,
                leg=tries,
                round=rnd,
                role=role,
            )
            with lock:
                legs.append(chain.Leg(t_send, t_recv, outcome.cost_usd))
                if role == "combine" and isinstance(full, dict):
                    _with_curve(rec, full, legs, min(leg.t_send for leg in legs))
                writer.write(rec)
                recs.append(rec)
            if tries == 0:
                ticks.add()
            if isinstance(full, dict):
                return full
            if _error_type(outcome) not in chain.RESUMABLE_ERRORS:
                break
            log.warning(
                "%s round %d %s %d failed (%s); retrying", batch.target, rnd, role, index, rec.error
            )
        return None

    label = f"{batch.target} {spec.name}"
    final = _drive_rounds(spec, params, w, base_request, pool, attempt, label)
    ticks.to(total)  # the bar ends at 100% even when a round failed
    recs.sort(key=lambda r: r.t_send)
    return recs, final


def _drive_rounds(
    spec: WorkloadSpec,
    params: Mapping[str, Any],
    w: int,
    base_request: Mapping[str, Any],
    pool: ThreadPoolExecutor,
    attempt: Callable[[dict[str, Any], int, int, str], dict[str, Any] | None],
    label: str,
) -> list[dict[str, Any]]:
    """Run the rounds of one job with ``attempt``; its final results (none if it failed)."""
    assert spec.rounds is not None
    rounds = spec.rounds.rounds(params, w)
    for rnd in range(rounds):
        worker_params, combine_params = spec.rounds.requests(params, w, rnd)
        futures = [
            pool.submit(
                attempt, {**base_request, "params": p}, i, rnd, str(p.get("phase") or "worker")
            )
            for i, p in enumerate(worker_params)
        ]
        done = [f.result() for f in futures]
        if not all(d is not None for d in done):
            log.error("%s round %d: a worker failed; the job stops", label, rnd)
            return []
        if combine_params is None:
            if rnd == rounds - 1:
                return [d for d in done if d is not None]
            continue
        combine_req = {**base_request, "params": combine_params}
        combined = attempt(combine_req, len(worker_params), rnd, "combine")
        if combined is None:
            log.error("%s round %d: combining failed; the job stops", label, rnd)
            return []
        if combined.get("status") != "continue":
            return [combined]
    return []


#: Timings a function in rounds reports, summed per batch (see ``workloads/roundio.py``).
ROUND_TIMINGS: Final = (
    "compute_ms",
    "store_read_ms",
    "store_write_ms",
    "bytes_read",
    "bytes_written",
)


def _rounds_summary(recs: Sequence[InvocationRecord]) -> dict[str, Any]:
    """A job in rounds' totals: rounds run, and each round timing summed over its records."""
    out: dict[str, Any] = {
        "rounds": 1 + max((r.round for r in recs if r.round is not None), default=-1)
    }
    for key in ROUND_TIMINGS:
        values = []
        for r in recs:
            timings = r.outcome.response.get("timings") if r.ok else None
            if isinstance(timings, dict) and isinstance(timings.get(key), int | float):
                values.append(float(timings[key]))
        out[f"total_{key}"] = sum(values) if values else None
    return out


def _clean_job_scratch(target: Target, batch: Batch, run_id: str) -> None:
    """Delete a finished job's scratch prefix (kept after a failure, to see what it wrote).

    The prefix is the one the driver gave the job, never one a response names."""
    spec = workloads.specs()[batch.workload]
    if spec.store is not StoreAccess.SCRATCH:
        return
    prefix = scratch_prefix(spec.name, job_id(batch, run_id))
    try:
        store = target.scratch_store()
        if store is None:
            log.info("%s: scratch objects under %s are left in place", target.name, prefix)
            return
        n = store.delete_prefix(prefix)
    except (OSError, ContractError, RuntimeError) as exc:  # cleanup must not fail a run
        log.warning("%s: could not delete scratch under %s: %s", target.name, prefix, exc)
    else:
        log.info("%s: deleted %d scratch object(s) under %s", target.name, n, prefix)


def _training_summary(
    recs: Sequence[InvocationRecord], results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A chain's or data-parallel training's totals: legs, cost, accuracy curve, time to 0.90."""
    costs = [r.outcome.cost_usd for r in recs]
    billed = [r.outcome.billed_ms for r in recs]
    out: dict[str, Any] = {
        "legs": sum(1 for r in recs if r.role != "worker"),
        "cost_usd": sum(c for c in costs if c is not None)
        if all(c is not None for c in costs) and costs
        else None,
        "billed_ms": sum(b for b in billed if b is not None)
        if all(b is not None for b in billed) and billed
        else None,
    }
    legs = [chain.Leg(r.t_send, r.t_recv, r.outcome.cost_usd) for r in recs]
    last = next((r for r in reversed(recs) if r.ok and r.role != "worker"), None)
    full = results[0] if results else (last.outcome.response.get("result") if last else None)
    if legs and isinstance(full, Mapping) and isinstance(full.get("progress"), list):
        points = chain.curve(legs, full["progress"], min(leg.t_send for leg in legs))
        out["progress"] = points
        reached = chain.time_to(points)
        out["accuracy_target"] = chain.TARGET_ACCURACY
        out["time_to_target_s"] = reached["elapsed_s"]
        out["cost_to_target_usd"] = reached["cost_usd"]
        out["epochs_to_target"] = reached["epoch"]
    return out


def _clean_scratch(target: Target, batch: Batch, results: Sequence[Mapping[str, Any]]) -> None:
    """Delete a finished training's checkpoints (kept after a failure, to resume from).

    The prefix is the one the driver gave the chain, never one a response names: a reply
    cannot make the driver delete anything else in the store.
    """
    params = batch.requests[0]["params"] if batch.requests else {}
    said = results[0].get("scratch") if results else None
    if not isinstance(said, str) or "chain" not in params or "model" not in params:
        return
    prefix = chain.scratch_prefix(str(params["model"]), str(params["chain"]))
    if said != prefix:
        log.warning(
            "%s: a training reported checkpoints under %r, not %r: left in place",
            target.name,
            said,
            prefix,
        )
        return
    try:
        store = target.scratch_store()
        if store is None:
            log.info("%s: checkpoints under %s are left in place", target.name, prefix)
            return
        n = store.delete_prefix(prefix)
    except (OSError, ContractError) as exc:  # cleanup must not fail a finished run
        log.warning("%s: could not delete checkpoints under %s: %s", target.name, prefix, exc)
    else:
        log.info("%s: deleted %d checkpoint object(s) under %s", target.name, n, prefix)
