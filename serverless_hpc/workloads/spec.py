"""What the whole project knows about one workload, declared once, in the workload's package.

A workload is a package ``serverless_hpc/workloads/<name>/``: its ``__init__.py`` declares a
:class:`WorkloadSpec` named ``SPEC`` (plain data and small pure functions, importable without
numpy or pydantic, so the driver stays light) and its ``function.py`` holds the code that runs
inside a function instance (``preload()`` and ``run(params, ctx) -> Output``).

Everything else reads the spec: the driver's plan and batch summary, the targets' default
timeouts, the EC2 runner, the OpenWhisk apply tables, the CDK app (image, memory, timeout,
IAM from the declared store access) and the report's panels. Adding a workload is adding a
package; copying one under a new name makes a working workload (the name comes from the
package name).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from serverless_hpc.ranges import Range, split_ranges

__all__ = [
    "FANOUT_PANELS",
    "MODEL_NAME",
    "Check",
    "Image",
    "Option",
    "Panel",
    "Range",
    "RoundPlan",
    "StoreAccess",
    "Training",
    "WorkloadSpec",
    "combine_failures",
    "range_shard",
    "scratch_prefix",
    "split_ranges",
]


class Image(enum.StrEnum):
    """The runtime image a workload's function needs."""

    LEAN = "lean"  #: numpy + LiteRT: small, fast cold starts
    TRAIN = "train"  #: TensorFlow as well: large, slow cold starts


class StoreAccess(enum.StrEnum):
    """What a workload's function does with the model store (decides its IAM on AWS)."""

    NONE = "none"
    READ_MODELS = "read-models"
    WRITE_MODELS = "write-models"
    #: Reads and writes scratch objects under ``scratch/`` (a coupled job's data between its
    #: rounds; the driver deletes the job's prefix after it succeeded). No model access.
    SCRATCH = "scratch"


#: The store prefix of every scratch object (see :attr:`StoreAccess.SCRATCH`).
SCRATCH_PREFIX: Final = "scratch"


def scratch_prefix(workload: str, job: str) -> str:
    """The store prefix of everything one job of ``workload`` writes between its rounds
    (``job``: the id the driver gave the batch). Deleted once the job succeeded."""
    return f"{SCRATCH_PREFIX}/{workload}/{job}"


class Panel(enum.StrEnum):
    """Report panels a workload takes part in."""

    LATENCY = "latency"  #: latency by fan-out (fanned-out workloads)
    MAKESPAN = "makespan"  #: makespan by fan-out
    COLD_WARM = "cold-warm"  #: cold against warm latency
    BREAKDOWN = "breakdown"  #: cold-start phases
    ACCURACY = "accuracy"  #: a model's test accuracy


#: Every panel; the default for a fanned-out workload.
FANOUT_PANELS: Final = (Panel.LATENCY, Panel.MAKESPAN, Panel.COLD_WARM, Panel.BREAKDOWN)


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict the report shows: a combined result that must hold, and whether it does."""

    name: str
    ok: bool
    detail: str


#: A model bundle's name or version: one path segment of the store (no ``..``, no ``/``).
MODEL_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{1,63}){0,3}"


@dataclass(frozen=True, slots=True)
class Option:
    """A request parameter a user may set, declared by its workload.

    Every declared option is checked when the plan is made (``--param WORKLOAD.PARAM=VALUE``
    or its flag): its type, its bounds, its choices or pattern, so a bad value is refused
    with exit 2 before anything runs, never answered by a failed invocation each. With
    ``flag``, it is also an ``shpc bench`` option (``--FLAG``) and a dashboard form field of
    that name (see docs/design.md, "The workload spec").
    """

    #: The request parameter it sets.
    param: str
    #: ``int``, ``float``, ``str`` or ``bool``.
    kind: type
    #: One line for ``--help`` and the form.
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: A regular expression a string must match whole.
    pattern: str | None = None
    #: ``null`` is accepted (the function's own default).
    nullable: bool = False
    #: The ``shpc bench`` flag and form field (``images`` -> ``--images``); None: --param only.
    flag: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (int, float, str, bool):
            raise ValueError(f"option {self.param}: kind must be int, float, str or bool")
        if self.flag is not None and not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", self.flag):
            raise ValueError(f"option {self.param}: flag {self.flag!r} is not a lower_snake name")

    def check(self, workload: str, value: Any) -> Any:
        """``value`` if it fits (an int is taken where a float is asked); ``ValueError``
        naming ``workload.param`` and the rule otherwise."""
        where = f"{workload}.{self.param}"
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{where}: a value is required")
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) != (self.kind is bool) or not isinstance(value, self.kind):
            got = type(value).__name__
            raise ValueError(f"{where}: expected {self.kind.__name__}, got {got} {value!r:.40}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = self.minimum, self.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{where}: {value} is outside {_bounds(low, high)}")
        if isinstance(value, str):
            if self.choices and value not in self.choices:
                raise ValueError(f"{where}: {value!r:.40} is not one of {', '.join(self.choices)}")
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise ValueError(f"{where}: {value!r:.40} does not match {self.pattern}")
        return value

    def describe(self) -> str:
        """The help text with the bounds or choices appended."""
        extra = ""
        if self.choices:
            extra = f" ({'/'.join(self.choices)})"
        elif self.minimum is not None or self.maximum is not None:
            extra = f" ({_bounds(self.minimum, self.maximum)})"
        return self.help + extra


def _bounds(low: float | None, high: float | None) -> str:
    def fmt(v: float) -> str:
        return f"{v:g}"

    if low is not None and high is not None:
        return f"{fmt(low)}..{fmt(high)}"
    return f">= {fmt(low)}" if low is not None else f"<= {fmt(high)}"  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Training:
    """How a training workload reports itself: the names the driver and the report read.

    The driver's progress bar counts ``epochs_param`` epochs; the report reads the final
    accuracy from the batch line's ``accuracy_key`` and the curve from the result's
    ``progress_key`` entries (each with ``epoch`` and ``accuracy_key``; ``entry_fields``
    are kept beside them).
    """

    epochs_param: str = "epochs"
    accuracy_key: str = "test_accuracy"
    progress_key: str = "progress"
    entry_fields: tuple[str, ...] = ()


def range_shard(params: Mapping[str, Any], r: Range) -> dict[str, Any]:
    """A shard's parameters: the batch's, with ``start``/``end`` set to its range (offset by
    the batch's own ``start``, if any). The default ``shard_params`` of a fanned-out spec."""
    base = int(params.get("start", 0))
    return {**params, "start": base + r.start, "end": base + r.end}


def combine_failures(workload: str, batches: Sequence[Mapping[str, Any]], what: str) -> list[Check]:
    """A failing check when a batch's results were not combined: a malformed result
    (``combine_error``) or failed invocations (a partial combine would be wrong, so none ran).
    """
    broken = [b for b in batches if b.get("combine_error") or b.get("failed")]
    if not broken:
        return []
    first = broken[0]
    why = first.get("combine_error") or (
        f"{first['failed']} of {first.get('invocations', '?')} invocations failed"
    )
    return [
        Check(
            f"{workload}: every batch's {what}",
            False,
            f"{len(broken)} batch(es) could not be: {why}",
        )
    ]


def _no_splits(params: Mapping[str, Any]) -> tuple[str, ...]:
    return ()


def _combine_nothing(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {}


def _check_nothing(batches: Sequence[Mapping[str, Any]]) -> list[Check]:
    return []


def _identity(result: dict[str, Any]) -> dict[str, Any]:
    return result


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """A job that runs in rounds: round k's invocations start after round k-1's ended, each
    reading what the previous rounds wrote in the store.

    The driver runs a batch of such a workload round by round: the round's worker requests
    at once, then its combine request (if any). A combine result with ``"status":
    "continue"`` continues; any other combine result ends the job after it; after
    :attr:`rounds` rounds the job ends. ``rounds`` returning 0 means the batch does not run in
    rounds (a plain batch, or a resumable chain), so one spec can offer both. Either function
    raises ``ValueError`` (naming the workload and what is wrong) for params or a worker count
    the job cannot run with; the driver refuses such a plan before anything runs.
    """

    #: How many rounds a batch runs at most, from its params and its worker count.
    rounds: Callable[[Mapping[str, Any], int], int]
    #: Round k's request params: one dict per worker (the list may differ in length from
    #: round to round: kmers maps then reduces), then the round's combine step's (None: none).
    requests: Callable[
        [Mapping[str, Any], int, int], tuple[list[dict[str, Any]], dict[str, Any] | None]
    ]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """One workload, as the driver, targets, deploy tools and report see it.

    Fan-out: a workload with ``input_size`` is *fanned out*: a batch of ``n`` invocations
    splits ``[0, input_size(params))`` into ``n`` ranges and ``shard_params`` turns each
    into one request's parameters. A workload without it (``train``) is one invocation per
    batch. ``combine`` turns the successful results of one batch into the batch's summary
    fields (given the successful results; only a complete batch's when
    ``combine_needs_all``); ``ValueError``, ``KeyError`` or ``TypeError`` from it are
    recorded as the batch's ``combine_error``. ``check`` judges this workload's batches of a
    whole run (for example, every fan-out must reduce to the identical result).
    """

    #: The workload's name: the request's ``workload`` field (its package name).
    name: str
    #: One line for help texts and the report.
    summary: str
    #: The module that runs inside a function: ``preload()`` and ``run(params, ctx)``.
    function_module: str
    image: Image = Image.LEAN
    store: StoreAccess = StoreAccess.NONE
    #: Function memory (MB) and timeout (s) on every platform unless the user overrides them.
    memory_mb: int = 2048
    timeout_s: float = 60.0
    #: The least memory (MB) the function runs in. A platform whose memory ceiling is below
    #: :attr:`memory_mb` (a default OpenWhisk allows 512 MB) gives it the ceiling instead, but
    #: never less than this: below it the deploy stops and says what to raise.
    min_memory_mb: int = 128
    #: Position in a run: lower first (a model's producer before its readers).
    order: int = 50
    #: Part of ``shpc bench``'s default plan.
    default: bool = True
    #: A long job (a training): planned ``--train-repeats`` times, natural mode only, rather
    #: than at every mode and repeat.
    long_running: bool = False
    #: Resumable across invocations: a request takes ``chain`` (an id the driver makes unique)
    #: and ``epochs``; a result with ``"status": "continue"`` asks for another invocation with
    #: the same request, which resumes from the checkpoint the function stored (see
    #: :mod:`serverless_hpc.chain`). A done result may name ``"scratch"``, a store prefix the
    #: driver deletes once the chain succeeded.
    resumable: bool = False
    #: Can train over ``--train-workers`` N functions: requests take ``workers``, ``round``
    #: and ``worker`` (none: the round's combine step); ``epochs`` is the number of rounds.
    data_parallel: bool = False
    #: A resumable workload's progress note: the store key of ``{"epoch": k}`` its function
    #: rewrites after each epoch of a request (None: no note), which the driver polls.
    progress_note: Callable[[Mapping[str, Any]], str | None] | None = None
    #: The model name this workload reads or writes (with :attr:`store` other than NONE).
    model: str | None = None
    #: Base parameters of every planned request (the user's ``--param`` values go on top).
    plan_params: Mapping[str, Any] = field(default_factory=dict)
    #: The parameters a user may set, checked when the plan is made (see :class:`Option`).
    options: tuple[Option, ...] = ()
    #: A training's conventions (None: not a training).
    training: Training | None = None
    #: The batch-line key of the accuracy this workload's combine reports (None: none).
    accuracy_key: str | None = None
    #: Dataset splits a request reads (the AWS adapter stages exactly these into /tmp).
    splits: Callable[[Mapping[str, Any]], tuple[str, ...]] = _no_splits
    #: Items a batch splits over (None: not fanned out; one invocation per batch).
    input_size: Callable[[Mapping[str, Any]], int] | None = None
    #: A shard's parameters from the batch's parameters and the shard's range.
    shard_params: Callable[[Mapping[str, Any], Range], dict[str, Any]] = range_shard
    combine: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]] = _combine_nothing
    #: Combine only a complete batch (a partial reduce would look like a wrong result).
    combine_needs_all: bool = False
    check: Callable[[Sequence[Mapping[str, Any]]], list[Check]] = _check_nothing
    #: The part of a result kept in the record (drop bulky payloads once combined).
    compact: Callable[[dict[str, Any]], dict[str, Any]] = _identity
    panels: tuple[Panel, ...] = FANOUT_PANELS

    # -- rounds ------------------------------------------------------------------------------
    #: The job runs in rounds that exchange data through the store (None: it does not). The
    #: workers of a round are the batch's shards (the plan's fan-out), or a data-parallel
    #: training's workers. See :class:`RoundPlan`.
    rounds: RoundPlan | None = None

    def __post_init__(self) -> None:
        models = (StoreAccess.READ_MODELS, StoreAccess.WRITE_MODELS)
        if self.store in models and not self.model:
            raise ValueError(f"{self.name}: a workload that uses the model store names its model")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"{self.name}: memory_mb {self.memory_mb} outside 128..10240")
        if not 128 <= self.min_memory_mb <= self.memory_mb:
            raise ValueError(
                f"{self.name}: min_memory_mb {self.min_memory_mb} outside 128..memory_mb"
            )
        if not 0 < self.timeout_s <= 900:
            raise ValueError(f"{self.name}: timeout_s {self.timeout_s} outside (0, 900]")

    @property
    def fanned_out(self) -> bool:
        """Whether a batch splits the input over several invocations."""
        return self.input_size is not None

    @property
    def writes_models(self) -> bool:
        """Whether the function writes model bundles (and so may pin readers' versions)."""
        return self.store is StoreAccess.WRITE_MODELS

    @property
    def reads_models(self) -> bool:
        """Whether the function reads a model bundle written by another workload."""
        return self.store is StoreAccess.READ_MODELS

    def requests(self, params: Mapping[str, Any], n: int) -> list[tuple[dict[str, Any], int]]:
        """The parameters and item count of each of ``n`` invocations of one batch.

        ``ValueError`` (naming the workload) when the input cannot be split ``n`` ways.
        """
        merged = {**self.plan_params, **params}
        if self.input_size is None:
            if n != 1:
                raise ValueError(f"{self.name} is not fanned out: one invocation per batch")
            return [(merged, 0)]
        total = self.input_size(merged)
        try:
            ranges = split_ranges(total, n)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return [(self.shard_params(merged, r), r.size) for r in ranges]

    def option(self, param: str) -> Option | None:
        """The declared option that sets ``param`` (None: not declared)."""
        return next((o for o in self.options if o.param == param), None)

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with every declared option's value checked; ``ValueError`` naming the
        first parameter at fault (an undeclared one included, when the spec declares any)."""
        out = dict(params)
        for key, value in params.items():
            opt = self.option(key)
            if opt is not None:
                out[key] = opt.check(self.name, value)
            elif self.options and key not in self.plan_params:
                known = ", ".join(sorted({o.param for o in self.options} | set(self.plan_params)))
                raise ValueError(
                    f"{self.name}.{key}: not a parameter of {self.name} (known: {known})"
                )
        return out

    def max_shards(self, params: Mapping[str, Any]) -> int | None:
        """The largest fan-out the input allows (None: not fanned out)."""
        if self.input_size is None:
            return None
        return self.input_size({**self.plan_params, **params})
