"""The plan: which batches a run sends to each target, in which order, and how many
invocations that makes (for the progress bar, ``run.json`` and the ``--yes`` guard).

A batch is one fan-out: a workload's input split into ``shards`` requests sent at once (a
training: one request, run as a chain of legs or in data-parallel rounds). Memory sizes are
outermost, so a cloud function is reconfigured once per size; natural mode before cold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from serverless_hpc import chain
from serverless_hpc.driver.config import CONFIRM_ABOVE, BenchConfig, BenchError
from serverless_hpc.workloads.spec import WorkloadSpec


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


def job_id(batch: Batch, run_id: str) -> str:
    """The id of one job in rounds (its scratch objects' prefix): unique in the run."""
    memory = f"-m{batch.memory_mb}" if batch.memory_mb is not None else ""
    return f"{run_id or 'run'}/{batch.target}-{batch.mode}-s{batch.shards}-r{batch.repeat}{memory}"


def round_invocations(spec: WorkloadSpec, params: Mapping[str, Any], workers: int) -> int:
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


def epochs_of(spec: WorkloadSpec, params: Mapping[str, Any]) -> int:
    """The epochs a training's request asks for (its spec names the parameter); 1 if none."""
    key = spec.training.epochs_param if spec.training is not None else None
    value = params.get(key) if key else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 1


def count_invocations(
    cfg: BenchConfig,
    supports_cold: Callable[[str], bool],
    supports_memory: Callable[[str], bool] = lambda _: False,
) -> int:
    """The fewest invocations (records) the whole plan makes, without building it: what a
    complete run's records.jsonl holds at least, and what the progress bar of invocations
    counts. A chained training counts one (its legs are as many as it needs); its epochs
    are counted apart (:func:`count_epochs`)."""
    return _count(cfg, supports_cold, supports_memory)[0]


def count_epochs(cfg: BenchConfig, supports_memory: Callable[[str], bool] = lambda _: False) -> int:
    """The epochs of the plan's chained trainings: the progress bar of epochs counts them
    (a chain's legs are not known ahead, its epochs are)."""
    return _count(cfg, lambda _: False, supports_memory)[1]


def _count(
    cfg: BenchConfig,
    supports_cold: Callable[[str], bool],
    supports_memory: Callable[[str], bool],
) -> tuple[int, int]:
    invocations = epochs = 0
    for target in cfg.targets:
        per_size = per_size_epochs = 0
        for spec in cfg.specs():
            if spec.long_running:
                if not cfg.trains_on(target):
                    continue
                params = cfg.params_of(spec.name)
                for w in cfg.train_workers if spec.data_parallel else (1,):
                    if w > 1:  # a data-parallel training: its rounds' invocations
                        per_size += cfg.train_repeats * round_invocations(spec, params, w)
                    else:
                        per_size += cfg.train_repeats
                        if spec.resumable:
                            per_size_epochs += cfg.train_repeats * epochs_of(spec, params)
                continue
            fanout = sum(cfg.shards) if spec.fanned_out else 1
            if spec.rounds is not None:  # a job in rounds: every round's invocations
                params = cfg.params_of(spec.name)
                fanout = sum(round_invocations(spec, params, s) or s for s in cfg.shards)
            for mode in cfg.modes:
                if mode == "cold" and not supports_cold(target):
                    continue
                per_size += fanout * (cfg.repeats if mode == "natural" else cfg.cold_repeats)
        sizes = len(memory_sizes(cfg, supports_memory(target)))
        invocations += per_size * sizes
        epochs += per_size_epochs * sizes
    return invocations, epochs


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


def model_writers(cfg: BenchConfig) -> dict[str, str]:
    """Model name -> the planned workload that writes it."""
    return {s.model: s.name for s in cfg.specs() if s.writes_models and s.model}


def with_version(batch: Batch, version: str) -> Batch:
    """``batch`` with every request pinned to model ``version``."""
    reqs = tuple({**r, "params": {**r["params"], "version": version}} for r in batch.requests)
    return replace(batch, requests=reqs)
