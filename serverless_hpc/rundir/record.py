"""The invocation record: the driver's context around a target's :class:`Outcome`.

One JSON line of ``records.jsonl`` per invocation. :data:`RECORD_FIELDS` names every field a
record line holds with its JSON type; :meth:`InvocationRecord.to_dict` writes exactly those,
and the readers (:mod:`.jsonl`) check them. The environment is not repeated here: it is
``run.json``'s (``environment`` and ``targets``), written once per run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, make_dataclass
from typing import Any, Final

from serverless_hpc.invocation import Outcome

#: Where and when an invocation ran, as the driver saw it (the record's fields around the outcome).
_CONTEXT = (
    "run_id",
    "target",
    "workload",
    "shard",
    "shards",
    "items",
    "repeat",
    "mode",
    "client_ms",
    "t_send",
    "t_recv",
)


@dataclass(slots=True)
class InvocationRecord:
    """One invocation's record: the driver's context around the target's :class:`Outcome`.

    Times are milliseconds (``t_send``/``t_recv`` unix seconds); ``None`` where a platform has
    no such figure. ``result`` is the workload's result as its spec compacts it for records.
    """

    run_id: str
    target: str
    workload: str
    shard: int
    shards: int
    items: int
    repeat: int
    mode: str  # "natural": cold only when the platform chose so; "cold": forced cold starts
    client_ms: float
    t_send: float  # unix time the request was sent (for makespan)
    t_recv: float
    outcome: Outcome
    result: dict[str, Any] | None = None
    #: The size of the whole result as compact JSON, before the spec's compaction: what the
    #: function sent back (the projection models payload limits from it).
    result_bytes: int | None = None
    #: A chained training: this invocation's position in its chain (0, 1, ...).
    leg: int | None = None
    #: A data-parallel training: the round, and ``"worker"`` or ``"combine"``.
    round: int | None = None
    role: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the invocation succeeded."""
        return self.outcome.ok

    @property
    def error(self) -> str | None:
        """The failure as ``"Type: message"``, else None."""
        return self.outcome.error

    def to_dict(self) -> dict[str, Any]:
        """The record as the flat JSON object of one ``records.jsonl`` line."""
        o = self.outcome
        timings = (o.response.get("timings") or {}) if o.ok else {}
        out: dict[str, Any] = {k: getattr(self, k) for k in _CONTEXT}
        out.update(
            cold=o.cold,
            ok=o.ok,
            error=o.error,
            init_ms=o.init_ms,
            duration_ms=o.duration_ms,
            load_ms=timings.get("load_ms"),
            compute_ms=timings.get("compute_ms"),
            billed_ms=o.billed_ms,
            memory_mb=o.memory_mb,
            max_rss_mb=o.max_rss_mb,
            cost_usd=o.cost_usd,
            breakdown=o.breakdown,
            extra=o.extra,
            instance=o.instance,
            resources=o.resources,
            oversubscribed=o.oversubscribed,
            throttled=o.throttled,
            retries=o.retries,
            result=self.result,
            result_bytes=self.result_bytes,
            leg=self.leg,
            round=self.round,
            role=self.role,
        )
        return out

    def to_json(self) -> str:
        """The record as one JSON line (no trailing newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


_NUM: Final = (int, float)
_NONE: Final = (type(None),)

#: Every field of a record line with the JSON types it may hold (``NoneType``: null allowed).
#: A line whose field has another type is skipped by the readers and named, like a torn line.
RECORD_SCHEMA: Final[dict[str, tuple[type, ...]]] = {
    "run_id": (str, *_NONE),
    "target": (str,),
    "workload": (str,),
    "shard": (int,),
    "shards": (int,),
    "items": (int,),
    "repeat": (int,),
    "mode": (str,),
    "client_ms": _NUM,
    "t_send": _NUM,
    "t_recv": _NUM,
    "cold": (bool,),
    "ok": (bool,),
    "error": (str, *_NONE),
    "init_ms": (*_NUM, *_NONE),
    "duration_ms": (*_NUM, *_NONE),
    "load_ms": (*_NUM, *_NONE),
    "compute_ms": (*_NUM, *_NONE),
    "billed_ms": (*_NUM, *_NONE),
    "memory_mb": (int, *_NONE),
    "max_rss_mb": (*_NUM, *_NONE),
    "cost_usd": (*_NUM, *_NONE),
    "breakdown": (dict,),
    "extra": (dict,),
    "instance": (str, *_NONE),
    "resources": (dict,),
    "oversubscribed": (bool, *_NONE),
    "throttled": (int,),
    "retries": (int,),
    "result": (dict, *_NONE),
    "result_bytes": (int, *_NONE),
    "leg": (int, *_NONE),
    "round": (int, *_NONE),
    "role": (str, *_NONE),
}
#: The fields a record line must carry for the report to use it at all.
RECORD_REQUIRED: Final = frozenset(
    {"target", "workload", "shard", "shards", "mode", "cold", "ok", "client_ms", "t_send", "t_recv"}
)
#: The fields the dashboard's pages use of a record (its compact view: no result payload).
RECORD_PAGE_FIELDS: Final = (
    "target",
    "workload",
    "shard",
    "shards",
    "repeat",
    "mode",
    "cold",
    "ok",
    "client_ms",
    "init_ms",
    "compute_ms",
)

#: What a report does not keep of a record: the result payload (its size is
#: ``result_bytes``), per-platform detail and the chain leg no figure is computed from.
#: CPython shares one key table between rows of at most 29 keys: a test holds the count.
_NOT_REPORTED: Final = frozenset({"result", "extra", "resources", "instance", "leg"})
#: The fields the report reads of a record, in the record's order.
REPORT_FIELDS: Final = tuple(k for k in RECORD_SCHEMA if k not in _NOT_REPORTED)
#: Values repeated across records, kept once in memory.
_SHARED: Final = ("run_id", "target", "workload", "mode", "role", "error")


#: The row a report keeps of a record: a class whose ``__init__`` sets every field in
#: order, so its instances' attribute dicts share one key table (PEP 412).
_ReportRow: Final = make_dataclass("ReportRow", REPORT_FIELDS, repr=False, eq=False)
_SHARED_AT: Final = tuple(REPORT_FIELDS.index(k) for k in _SHARED)


def report_row(values: Sequence[Any]) -> dict[str, Any]:
    """The report's row from the values of :data:`REPORT_FIELDS`, in that order: a plain
    dict (C-speed reads) whose keys are shared with every other row's, so a row costs its
    values, not a whole dict; repeated strings are interned. A report holds one per record;
    do not add keys to a row (that would give it a table of its own)."""
    row: dict[str, Any] = _ReportRow(*values).__dict__
    for at in _SHARED_AT:
        value = values[at]
        if type(value) is str:
            row[REPORT_FIELDS[at]] = sys.intern(value)
    return row


def record_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the report keeps it (:func:`report_row`): :data:`REPORT_FIELDS` only (no
    result payload: its size is ``result_bytes``), every field present (null where the line
    lacks it)."""
    return report_row([line.get(key) for key in REPORT_FIELDS])
