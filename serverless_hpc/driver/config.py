"""A run's configuration: the plan's options, their defaults (declared once, here) and bounds.

:class:`BenchConfig` is validated on construction; every message names the option at fault
as the command line spells it. The CLI and the dashboard take their defaults from
:func:`default` (see docs/design.md, "The driver").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from serverless_hpc import targets as target_registry
from serverless_hpc import workloads
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.workloads.spec import WorkloadSpec

MODES: Final = ("natural", "cold")
#: Functions one data-parallel training may use (the train workload's own bound).
MAX_TRAIN_WORKERS: Final = 64
#: The largest memory size any platform here offers (Lambda's 10,240 MB).
MAX_MEMORY_MB: Final = 10_240

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
            try:  # the declared options' types and bounds, before anything runs
                specs[name].check_params(self.params.get(name, {}))
            except ValueError as exc:
                raise BenchError(f"--param {exc}") from None
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

    def params_of(self, workload: str, *, vm: bool = False) -> dict[str, Any]:
        """``workload``'s request parameters: its spec's plan params, on a VM target its
        ``vm_params``, then the user's."""
        spec = workloads.specs()[workload]
        on_vm = spec.vm_params if vm else {}
        return {**spec.plan_params, **on_vm, **self.params.get(workload, {})}

    def specs(self) -> list[WorkloadSpec]:
        """The planned workloads' specs, in plan order."""
        return [s for n, s in workloads.specs().items() if n in self.workloads]


def config_json(cfg: BenchConfig) -> dict[str, Any]:
    """The configuration as ``run.json`` records it (each workload's params in full)."""
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


def timeout_of(cfg: BenchConfig, workload: str) -> float:
    """The per-invocation timeout of ``workload``: ``--timeout``, else its spec's."""
    timeout_s = cfg.settings.timeout_s
    return workloads.specs()[workload].timeout_s if timeout_s is None else timeout_s


def default(option: str) -> Any:
    """The default of one :class:`BenchConfig` field: the CLI's and the dashboard's too."""
    for f in fields(BenchConfig):
        if f.name == option:
            return f.default_factory() if f.default is MISSING else f.default  # type: ignore[operator]
    raise KeyError(option)
