"""A run's resources from first to last: its directory, its targets and its record file.

Targets are created and opened before anything is written, so a misconfigured one fails the
run at once and the corrected command can reuse the same ``--out``. The exit order (see
:func:`serverless_hpc.driver.run.run`) closes the targets before the record file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from serverless_hpc import targets as target_registry
from serverless_hpc import workloads
from serverless_hpc.contract import ContractError
from serverless_hpc.driver.config import BenchConfig, BenchError, RecordsUnwritable
from serverless_hpc.driver.plan import model_writers
from serverless_hpc.rundir import RecordWriter, RunDirError, RunLock
from serverless_hpc.rundir import check_out_dir as _check_out_dir
from serverless_hpc.targets.base import Target

log = logging.getLogger(__name__)


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


def check_model_available(cfg: BenchConfig) -> None:
    """Fail before running when a workload needs a model that no step will produce."""
    if not any(t in target_registry.LOCAL_TARGETS for t in cfg.targets):
        return
    from serverless_hpc.store import open_store

    try:  # a store that is a file would fail every invocation that touches it
        open_store(cfg.settings.store_uri)
    except ContractError as exc:
        raise BenchError(f"--store / $SHPC_STORE: {exc}") from exc
    writers = model_writers(cfg)
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


def check_memory(cfg: BenchConfig, opened: Mapping[str, Target]) -> None:
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


def close_records(writer: RecordWriter) -> None:
    """Close the record file; a failure here (the disk that failed a write fails the final
    flush too) is logged, so it never hides the error that stopped the run."""
    try:
        writer.close()
    except OSError as exc:
        log.error("closing %s: %s", writer.path, exc.strerror or exc)  # noqa: TRY400


def open_records(path: Path) -> RecordWriter:
    """The record file, opened for appending; :class:`RecordsUnwritable` if it cannot be."""
    try:
        return RecordWriter(path)
    except OSError as exc:
        raise RecordsUnwritable(f"cannot open {path}: {exc.strerror or exc}") from exc


def open_targets(cfg: BenchConfig, stack: ExitStack) -> dict[str, Target]:
    """Create every target, check the options given to them, then open each on ``stack``.

    :class:`BenchError` naming the target when one is unavailable: nothing is written yet.
    """
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
            stack.enter_context(target)
        except target_registry.TargetUnavailable as exc:
            raise BenchError(f"target {name!r} is unavailable: {exc}") from exc
        opened[name] = target
    check_memory(cfg, opened)
    return opened


def delete_scratch(target: Target, prefix: str, what: str) -> None:
    """Delete ``prefix`` (a finished job's ``what`` objects: checkpoint, scratch) from the
    store the target's functions share with the driver; said when there is none or it
    fails: a clean-up never fails a run."""
    try:
        store = target.scratch_store()
        if store is None:
            log.info("%s: %s objects under %s are left in place", target.name, what, prefix)
            return
        n = store.delete_prefix(prefix)
    except (OSError, ContractError, RuntimeError) as exc:
        log.warning("%s: could not delete %s under %s: %s", target.name, what, prefix, exc)
    else:
        log.info("%s: deleted %d %s object(s) under %s", target.name, n, what, prefix)
