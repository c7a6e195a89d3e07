"""C-speed reading of the run's JSON lines: typed decoders made from the schemas.

Why: a report of a million records spent most of its time in ``json`` and in checking each
line's fields in Python. Here msgspec decodes and checks a line in C against a Struct made
from the same schema (:data:`~serverless_hpc.rundir.record.RECORD_SCHEMA`, the batch
schema), so the schema stays the one statement of a line's shape. The fast path is only ever
a shortcut: a line it accepts is one the Python check accepts (it is the stricter of the two:
a duplicated key is checked at each occurrence), and a line it refuses is handed back
(``None``) for the Python check to decide and to name what is wrong. Payload fields no reader
keeps (a record's ``result``) are checked for their JSON type only, never built; so an
integer of more than 4,300 digits inside them, which Python's decoder refuses, passes here
(the one known difference, on lines no writer of this project makes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cache
from operator import itemgetter
from typing import Annotated, Any, Final

import msgspec

from serverless_hpc.rundir.record import (
    RECORD_REQUIRED,
    RECORD_SCHEMA,
    REPORT_FIELDS,
    report_row,
)

#: The largest finite float: a typed float beyond it (``1e400`` reads as inf) is refused.
_FMAX: Final = 1.7976931348623157e308
_FINITE: Final = Annotated[float, msgspec.Meta(ge=-_FMAX, le=_FMAX)]
#: Decodes a line already checked into a plain dict (every field, the payload too).
_PLAIN: Final = msgspec.json.Decoder()
#: Whatever the fast path may raise on a bad line: msgspec's own errors, invalid UTF-8 inside
#: a string (``UnicodeDecodeError``, a ValueError) and nesting deeper than it recurses.
_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)


def _field_type(types: tuple[type, ...], *, built: bool) -> Any:
    """The msgspec type of one schema field: its JSON types as a union; objects and arrays
    built only when ``built`` (else checked as such, their contents left undecoded)."""
    if float in types and int not in types:
        raise ValueError("a float field must also take an int (JSON does not tell them apart)")
    parts: list[Any] = []
    for kind in types:
        if kind is float:
            parts.append(_FINITE)
        elif kind is dict:
            parts.append(dict[str, Any] if built else dict[str, msgspec.Raw])
        elif kind is list:
            parts.append(list[Any] if built else list[msgspec.Raw])
        else:
            parts.append(kind)
    union = parts[0]
    for part in parts[1:]:
        union = union | part
    return union


def line_struct(
    name: str,
    fields: Mapping[str, tuple[type, ...]],
    required: Collection[str],
    built: Collection[str] = (),
) -> type[msgspec.Struct]:
    """A Struct that accepts exactly the lines the schema ``fields``/``required`` accepts.

    Its fields come in ``built``'s order first, then the rest of the schema's, so a caller
    can take the built ones as a leading slice of :func:`msgspec.structs.astuple`. A field
    that is not required may be absent (read as ``None``) but, when present, must have one of
    its types (null only where the schema allows it).
    """
    order = [k for k in built if k in fields] + [k for k in fields if k not in built]
    spec: list[Any] = []
    for key in order:
        kind = _field_type(fields[key], built=key in built)
        spec.append((key, kind) if key in required else (key, kind, None))
    return msgspec.defstruct(name, spec, kw_only=True, gc=False)


@cache
def _checker(fields: tuple[tuple[str, tuple[type, ...]], ...], required: frozenset[str]) -> Any:
    return msgspec.json.Decoder(line_struct("Line", dict(fields), required))


def line_checker(fields: Mapping[str, tuple[type, ...]], required: Collection[str]) -> Any:
    """The decoder that checks a line against a schema (made once per schema)."""
    return _checker(tuple(fields.items()), frozenset(required))


def decode_line(line: bytes, checker: Any) -> dict[str, Any] | None:
    """The line as a dict when it is a JSON object of ``checker``'s shape
    (:func:`line_checker`); ``None`` when the fast path cannot tell (the caller's Python
    check then decides, and names the problem)."""
    try:
        checker.decode(line)
        row: dict[str, Any] = _PLAIN.decode(line)
    except _ERRORS:
        return None
    return row


_REPORT: Final = msgspec.json.Decoder(
    line_struct("ReportLine", RECORD_SCHEMA, RECORD_REQUIRED, built=REPORT_FIELDS)
)
_REPORTED: Final = itemgetter(*range(len(REPORT_FIELDS)))


def decode_report_row(line: bytes) -> dict[str, Any] | None:
    """A record line straight into its report row (:func:`~.record.report_row`'s shape: the
    report's fields only, the result checked but never built); ``None`` when the fast path
    cannot tell, or when the line predates ``result_bytes`` but has a result (its size is
    then measured from the whole line by the caller)."""
    try:
        rec = _REPORT.decode(line)
    except _ERRORS:
        return None
    if rec.result_bytes is None and rec.result is not None:  # type: ignore[attr-defined]
        return None
    return report_row(_REPORTED(msgspec.structs.astuple(rec)))
