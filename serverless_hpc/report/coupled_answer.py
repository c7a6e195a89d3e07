"""The answer for coupled work: functions or the VM for the same job, and on Lambda with S3
the fan-out where communication overtakes compute (a model).

From the coupled table's rows (:mod:`.coupled`, measured) and the parts of each job's rounds:

* per workload, target and fan-out, the functions' wall time for a job beside the VM's for
  the same job: a VM target's (the platform profile's ``vm`` kind) run of the same workload
  at the same fan-out (its tiles), in memory (the coupled-node form: no bytes through the
  store) or through the store; where the run has no VM run of the workload, it says so;
* per workload and the target whose compute it takes, the modelled time per round on
  Lambda with S3 between the rounds (:mod:`.store_model`, the profile's ``store`` figures)
  at the measured fan-outs and a few more, and the smallest fan-out at which the modelled
  store time per round reaches the compute time per round.

The VM's and the functions' wall times both include whatever the job's combine step does
(checks included); both are this machine's, not a cloud's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from serverless_hpc.report.coupled import (
    CoupledRow,
    coupled_rows,
    ran_in_rounds,
    round_parts,
    slim_records,
    without_request_counts,
)
from serverless_hpc.report.profile import PlatformProfile, StoreProfile
from serverless_hpc.report.store_model import (
    MAX_FANOUT,
    Part,
    RoundProjection,
    Scaling,
    crossover,
    project,
    scalings,
)

#: Fan-outs the model is shown at, besides the measured ones and the crossover.
SHOWN_FANOUTS: Final = (1, 10, 100, 1000)


@dataclass(frozen=True, slots=True)
class VmTime:
    """A VM target's wall time for one job of a workload at one fan-out (measured)."""

    target: str
    shards: int
    job_ms: float
    in_memory: bool  #: no bytes went through the store (the coupled-node form)

    @property
    def form(self) -> str:
        """How the VM's parts exchanged their data."""
        return "in memory" if self.in_memory else "through the store"


@dataclass(frozen=True, slots=True)
class Beside:
    """The functions' job at one fan-out on one target, beside the VM's same job."""

    row: CoupledRow
    vm: tuple[VmTime, ...]  #: the VM runs of the same workload at the same fan-out

    @property
    def vm_over_functions(self) -> float | None:
        """The fastest VM's job time over the functions' (below 1: the VM was faster)."""
        if not self.vm or self.row.job_ms <= 0:
            return None
        return min(v.job_ms for v in self.vm) / self.row.job_ms


@dataclass(frozen=True, slots=True)
class Crossover:
    """On Lambda with S3, a model: where one workload's store time overtakes its compute."""

    workload: str
    target: str  #: whose measured compute and traffic the model takes
    measured_fanouts: tuple[int, ...]
    fanout: int | None  #: None: store time stays below compute up to :attr:`limit`
    limit: int
    speed: float  #: a cloud vCPU's speed over this machine's (the profile's; a model)
    speed_source: str
    projections: tuple[RoundProjection, ...]  #: per fan-out shown

    @property
    def from_one_fanout(self) -> bool:
        """Whether the traffic's growth with the fan-out is assumed, not fitted."""
        return len(self.measured_fanouts) < 2


@dataclass(frozen=True, slots=True)
class CoupledAnswer:
    """The coupled-work section: the measured table, the VM beside it, the model."""

    rows: list[CoupledRow]
    beside: list[Beside]
    no_vm: list[str]  #: workloads the run has no VM run of
    crossovers: list[Crossover]
    store: StoreProfile | None  #: None: the profile has no store figures (no model)
    notes: list[str] = field(default_factory=list)


def from_run(
    out: Path, batches: Sequence[Mapping[str, Any]], profile: PlatformProfile
) -> CoupledAnswer | None:
    """The section for the run directory ``out``; None when no batch ran in rounds through
    the store. The record file is read once, streaming, keeping the records in rounds."""
    if not ran_in_rounds(batches):
        return None
    return answer(list(slim_records(out)), profile)


def answer(records: Iterable[Mapping[str, Any]], profile: PlatformProfile) -> CoupledAnswer:
    """The section from a run's records in rounds (see the module's docstring)."""
    records = list(records)
    rows = coupled_rows(records)
    vm_rows = [r for r in rows if profile.kind(r.target) == "vm"]
    vm_by_job: dict[tuple[str, int], list[VmTime]] = defaultdict(list)
    for r in vm_rows:
        vm_by_job[(r.workload, r.shards)].append(
            VmTime(r.target, r.shards, r.job_ms, in_memory=r.mb_moved == 0)
        )
    beside = [
        Beside(r, tuple(vm_by_job.get((r.workload, r.shards), ())))
        for r in rows
        if profile.kind(r.target) != "vm"
    ]
    with_vm = {r.workload for r in vm_rows}
    no_vm = sorted({b.row.workload for b in beside} - with_vm)
    store = profile.store
    notes = []
    uncounted = without_request_counts(records)
    parts = {k: v for k, v in round_parts(records).items() if (k[0], k[1]) not in uncounted}
    crossovers = _crossovers(rows, parts, profile) if store else []
    if store is None:
        notes.append("the platform profile has no store figures: no Lambda with S3 model")
    notes += [
        f"{w} on {t}: its records carry no store request counts (recorded before they "
        "were): no Lambda with S3 model from them, which would take them as zero requests"
        for w, t in sorted(uncounted)
    ]
    return CoupledAnswer(rows, beside, no_vm, crossovers, store, notes)


def _crossovers(
    rows: Sequence[CoupledRow],
    parts: Mapping[tuple[str, str, int], Sequence[Part]],
    profile: PlatformProfile,
) -> list[Crossover]:
    """Per workload and target whose jobs moved data through the store: the model."""
    assert profile.store is not None
    moved = {(r.workload, r.target, r.shards) for r in rows if r.mb_moved > 0}
    by_source: dict[tuple[str, str], dict[int, Sequence[Part]]] = defaultdict(dict)
    for (workload, target, shards), these in parts.items():
        if (workload, target, shards) in moved:
            by_source[(workload, target)][shards] = these
    out = []
    for (workload, target), measured in sorted(by_source.items()):
        scaled: list[Scaling] = scalings(measured)
        speed, source = profile.speed(workload)
        fanout = crossover(scaled, profile.store, speed, MAX_FANOUT)
        shown = sorted({*SHOWN_FANOUTS, *measured, *([fanout] if fanout else [])})
        out.append(
            Crossover(
                workload=workload,
                target=target,
                measured_fanouts=tuple(sorted(measured)),
                fanout=fanout,
                limit=MAX_FANOUT,
                speed=speed,
                speed_source=source,
                projections=tuple(project(scaled, f, profile.store, speed) for f in shown),
            )
        )
    return out
