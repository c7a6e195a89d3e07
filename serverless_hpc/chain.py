"""Trainings longer than one function: chains of legs and data-parallel rounds (pure parts).

The driver (:mod:`serverless_hpc.driver`) orchestrates both, rather than a coordinator
function: a coordinator would be billed for every second it waits on its legs or workers,
would itself be bound by the function time limit it is meant to overcome, and would need
invoke permissions on its own function. The driver waits for free, and its loop is the same
on every target.

* **Chain** (a resumable workload, one worker): invoke; a success whose result says
  ``"status": "continue"`` is invoked again with the same request (the function resumes
  from its checkpoint in the store); a leg that failed the way a platform kills a function
  (``Timeout``, ``OutOfMemory``, ``PlatformError``) is invoked again too and resumes from the
  last checkpoint, so it costs at most the epoch in progress. :func:`next_step` decides.
* **Rounds** (data-parallel, ``--train-workers N``): each round, N worker invocations train
  on their shards from the same start and store their weights; then one combine invocation
  averages them, evaluates the average on the test set and stores it as the next round's
  start (after the last round it exports the model). The combine step is an invocation of
  the same function, not driver code, because evaluating and exporting need TensorFlow,
  which the driver never loads, and because the function is next to the store (in-region
  S3 on Lambda). :func:`round_requests` builds one round's requests.

Time and cost to accuracy: :func:`curve` turns the epochs' (or rounds') progress entries
into points of elapsed time and cost so far; :func:`time_to` reads a threshold off it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from serverless_hpc.contract import OUT_OF_MEMORY, PLATFORM_ERROR, TIMEOUT

#: Failures that mean the platform stopped the function; the next leg resumes.
RESUMABLE_ERRORS: Final = frozenset({TIMEOUT, OUT_OF_MEMORY, PLATFORM_ERROR})
#: Consecutive failed legs (or data-parallel attempts) before the chain gives up.
MAX_FAILED_LEGS: Final = 2
#: The accuracy the headline's "time and cost to accuracy" is read at.
TARGET_ACCURACY: Final = 0.90


class Step(enum.StrEnum):
    """What the driver does after a leg."""

    AGAIN = "again"  #: invoke again with the same request
    DONE = "done"  #: the chain produced its result
    FAIL = "fail"  #: give up: the failure is not one a resume fixes, or it keeps happening


@dataclass(slots=True)
class ChainState:
    """What the driver knows about a chain between legs."""

    legs: int = 0
    failed_in_a_row: int = 0
    epoch: int = 0  #: epochs done, as the last successful leg reported
    epochs: int | None = None  #: epochs in all, as a leg reported them
    no_progress_in_a_row: int = 0
    why: str = ""  #: why the chain stopped, when it failed


def next_step(
    state: ChainState,
    ok: bool,
    result: Mapping[str, Any] | None,
    error_type: str | None,
    *,
    leg_bound: int,
) -> Step:
    """Update ``state`` with one finished leg and say what comes next.

    A chain stops with FAIL when a leg fails with an error a resume cannot fix (bad input,
    a parity mismatch), after :data:`MAX_FAILED_LEGS` failed legs in a row, after that many
    "continue" legs in a row that moved no epoch, or when it reaches its leg bound:
    ``leg_bound``, or :func:`max_legs` of the epoch count a leg reported, whichever is larger.
    ``state.why`` then says which.
    """
    state.legs += 1
    if ok:
        state.failed_in_a_row = 0
        status = (result or {}).get("status", "done")
        if status != "continue":
            return Step.DONE
        epoch = int((result or {}).get("epoch", 0))
        total = (result or {}).get("epochs")
        if isinstance(total, int) and not isinstance(total, bool):
            state.epochs = total
        state.no_progress_in_a_row = 0 if epoch > state.epoch else state.no_progress_in_a_row + 1
        state.epoch = max(state.epoch, epoch)
        if state.no_progress_in_a_row >= MAX_FAILED_LEGS:
            state.why = f"{state.no_progress_in_a_row} legs in a row trained no epoch"
            return Step.FAIL
    else:
        state.failed_in_a_row += 1
        if error_type not in RESUMABLE_ERRORS:
            state.why = f"a {error_type} failure, which resuming cannot fix"
            return Step.FAIL
        if state.failed_in_a_row >= MAX_FAILED_LEGS:
            state.why = f"{state.failed_in_a_row} legs in a row failed"
            return Step.FAIL
    bound = max(leg_bound, max_legs(state.epochs) if state.epochs else 0)
    if state.legs >= bound:
        state.why = f"it reached its bound of {bound} legs"
        return Step.FAIL
    return Step.AGAIN


def max_legs(epochs: int) -> int:
    """A bound on a chain's legs: one per epoch plus room for a finishing leg and retries."""
    return epochs + 1 + MAX_FAILED_LEGS


def chain_id(run_id: str, target: str, repeat: int, workers: int = 1) -> str:
    """The chain id the driver gives one training (unique per run, target, repeat, workers)."""
    tail = f"{target}-r{repeat}" + (f"-w{workers}" if workers > 1 else "")
    return f"{run_id or 'run'}/{tail}"


def scratch_prefix(model: str, chain: str) -> str:
    """Store prefix of everything one chain writes (its checkpoints, its rounds' weights)."""
    return f"models/{model}/checkpoints/{chain}"


def rounds(params: Mapping[str, Any]) -> int:
    """A data-parallel training's rounds: ``epochs`` times ``syncs_per_epoch`` (default 1)."""
    return int(params.get("epochs", 1)) * int(params.get("syncs_per_epoch", 1))


def round_params(
    params: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Round ``rnd``'s worker params and its combine step's, from the batch's params (the
    training's :class:`~serverless_hpc.workloads.spec.RoundPlan`)."""
    out = [{**params, "workers": workers, "round": rnd, "worker": i} for i in range(workers)]
    return out, {**params, "workers": workers, "round": rnd}


def round_requests(
    base: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Round ``rnd``'s worker requests and its combine request, from the batch's request."""
    out, combine = round_params(base["params"], workers, rnd)
    return [{**base, "params": p} for p in out], {**base, "params": combine}


@dataclass(frozen=True, slots=True)
class Leg:
    """One invocation of a chain or round, as the curve needs it."""

    t_send: float
    t_recv: float
    cost_usd: float | None


def curve(
    legs: Sequence[Leg],
    progress: Sequence[Mapping[str, Any]],
    t0: float,
    *,
    accuracy_key: str = "accuracy",
    fields: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Time and cost to accuracy: one point per epoch (or round) in ``progress``.

    Each point has ``epoch``, ``accuracy`` (the entry's ``accuracy_key``, as the workload's
    spec names it), the entry's ``fields``, ``elapsed_s`` and ``cost_usd``.

    ``elapsed_s`` is the wall time from the chain's first request (``t0``) to the end of the
    epoch's training as the function stamped it (``t_unix``; for a cloud target its clock,
    good to NTP's milliseconds). ``cost_usd`` is the cost of every invocation that ended
    before that moment plus, for one still running, its cost pro rata of its time so far: a
    linear apportionment, since platforms bill whole invocations. None when any invocation
    so far has no cost figure (the local targets).
    """
    points = []
    for entry in progress:
        t = entry.get("t_unix")
        if not isinstance(t, int | float):
            continue
        total = 0.0
        priced = True
        for leg in legs:
            if leg.t_send >= t:
                continue
            if leg.cost_usd is None:
                priced = False
                break
            span = leg.t_recv - leg.t_send
            share = 1.0 if leg.t_recv <= t or span <= 0 else (t - leg.t_send) / span
            total += leg.cost_usd * share
        cost = total if priced else None
        points.append(
            {
                "epoch": entry.get("epoch"),
                "accuracy": entry.get(accuracy_key),
                **{f: entry.get(f) for f in fields},
                "elapsed_s": t - t0,
                "cost_usd": cost,
            }
        )
    return points


def time_to(
    points: Sequence[Mapping[str, Any]], accuracy: float = TARGET_ACCURACY
) -> dict[str, Any]:
    """The first point at or above ``accuracy``: its epoch, elapsed time and cost (or Nones)."""
    for p in points:
        acc = p.get("accuracy")
        if isinstance(acc, int | float) and acc >= accuracy:
            return {"epoch": p["epoch"], "elapsed_s": p["elapsed_s"], "cost_usd": p["cost_usd"]}
    return {"epoch": None, "elapsed_s": None, "cost_usd": None}
