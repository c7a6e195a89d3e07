"""The C-speed line decoders agree with the Python check, line for line.

The fast path (:mod:`serverless_hpc.rundir.decode`) may only be a shortcut: every line it
accepts must be one the Python check accepts, with the same values, and a line it refuses is
decided by the Python check. Lines are generated from the schemas themselves: a valid record
or batch line, then any field set to any JSON value (or removed, or an unknown field added),
plus raw text mutations (torn, garbage, NaN, 1e400, duplicated keys, bad UTF-8).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_hpc.rundir import (
    BATCH_LINE,
    BATCH_SCHEMA,
    RECORD_LINE,
    RECORD_SCHEMA,
    REPORT_FIELDS,
    BadLine,
    iter_jsonl,
    iter_record_rows,
    record_row,
)
from serverless_hpc.rundir.decode import decode_line, decode_report_row, line_checker
from serverless_hpc.rundir.jsonl import _checked
from tests.synthetic_run import _record

#: A whole record (the synthetic runs' shape) with a payload and a breakdown.
RECORD = _record(
    "local-faas",
    "sleep",
    shard=0,
    shards=1,
    repeat=0,
    items=1,
    client_ms=100.0,
    t_send=1000.0,
    t_recv=1000.1,
    memory_mb=2048,
    breakdown={"a": 1.0},
    result={"n": [1, 2, {"x": "y"}]},
    result_bytes=20,
)
BATCH = {"target": "local-faas", "workload": "sleep", "shards": 1, "mode": "natural", "failed": 0}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _mutated(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[bytes]:
    def build(key: str, value: Any, how: str) -> bytes:
        line = dict(base)
        if how == "drop":
            line.pop(key, None)
        else:
            line[key if how == "set" else key + "_extra"] = value
        return json.dumps(line).encode()

    return st.builds(
        build, st.sampled_from(fields), JSON_VALUES, st.sampled_from(["set", "drop", "add"])
    )


RAW_CASES = [
    b'{"a": NaN}',
    b'{"client_ms": 1e400}',
    b"[1, 2]",
    b"garbage",
    b'{"target": "x", "target": 5}',
    b'{"target": 5, "target": "x"}',
    b"\xff\xfe{",
    json.dumps(RECORD)[:-5].encode(),
    json.dumps({**RECORD, "client_ms": 1e308}).encode(),
    json.dumps({**RECORD, "unknown": 1e400}).encode().replace(b"Infinity", b"1e400"),
    json.dumps({**RECORD, "shard": 2**80}).encode(),
    b'{"target": "a\xffb"}',  # invalid UTF-8 inside a string
    json.dumps({**RECORD, "result": {"a": "x"}}).encode().replace(b'"x"', b'"\xff"'),
    json.dumps(RECORD).encode()[:-1] + b', "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}",
]


def _agree(line: bytes, schema: Any) -> None:
    fast = decode_line(line, line_checker(schema.fields, schema.required))
    slow = _checked(1, line, schema)
    if fast is not None:  # accepted by the fast path: the Python check accepts the same row
        assert slow == fast
        assert [type(v) for v in slow.values()] == [type(v) for v in fast.values()]


def _agree_row(line: bytes) -> None:
    fast = decode_report_row(line)
    slow = _checked(1, line, RECORD_LINE)
    if fast is not None:
        assert not isinstance(slow, BadLine), slow
        want = record_row(slow)
        assert list(fast) == list(REPORT_FIELDS)
        assert fast == want
        assert [type(v) for v in fast.values()] == [type(v) for v in want.values()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(RECORD, list(RECORD_SCHEMA)))
def test_record_lines_fast_path_agrees(line: bytes) -> None:
    _agree(line, RECORD_LINE)
    _agree_row(line)


@settings(max_examples=300, deadline=None)
@given(_mutated(BATCH, list(BATCH_SCHEMA)))
def test_batch_lines_fast_path_agrees(line: bytes) -> None:
    _agree(line, BATCH_LINE)


def test_raw_cases_agree() -> None:
    for line in RAW_CASES:
        _agree(line, RECORD_LINE)
        _agree_row(line)


def test_lines_the_fast_path_cannot_read_are_decided_by_the_python_check(tmp_path: Path) -> None:
    """Invalid UTF-8 inside a string and very deep nesting: read (or named) as before, never
    an exception out of the reader; a line of Unicode whitespace is blank, as before."""
    path = tmp_path / "records.jsonl"
    good = json.dumps(RECORD).encode()
    lines = [good, *RAW_CASES[-3:], "\u3000\u00a0".encode(), good]
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = list(iter_jsonl(path, RECORD_LINE))
    rows = list(iter_record_rows(path, record_row))
    assert len(read) == len(rows) == 5  # the blank line is skipped
    assert read[0] == RECORD and rows[-1] == record_row(RECORD)
    assert isinstance(read[1], BadLine)  # lacks the required fields
    assert read[2] == {**RECORD, "result": {"a": "\ufffd"}}
    assert read[3] == BadLine(4, "not JSON")  # deeper than Python's decoder recurses


def test_the_fast_path_takes_a_good_line_and_refuses_a_bad_one() -> None:
    """Not a shortcut that always declines: a good line is decoded there, a bad one is not."""
    good = json.dumps(RECORD).encode()
    assert decode_line(good, line_checker(RECORD_LINE.fields, RECORD_LINE.required)) == RECORD
    assert decode_report_row(good) == record_row(RECORD)
    bad = json.dumps({**RECORD, "ok": "yes"}).encode()
    assert decode_report_row(bad) is None
    old = json.dumps({k: v for k, v in RECORD.items() if k != "result_bytes"}).encode()
    assert decode_report_row(old) is None  # its result's size is measured by the caller


def test_files_read_the_same_through_either_path(tmp_path: Path) -> None:
    """A file of good and bad lines: the rows and the named bad lines, in order."""
    path = tmp_path / "records.jsonl"
    lines = [
        json.dumps(RECORD),
        json.dumps({**RECORD, "shard": "0"}),
        "",
        json.dumps({**RECORD, "shard": 1}),
        '{"torn": ',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = list(iter_jsonl(path, RECORD_LINE))
    assert read[0] == RECORD and read[2] == {**RECORD, "shard": 1}
    assert read[1] == BadLine(2, "field 'shard' is not int")
    assert read[3] == BadLine(5, "not JSON")
    rows = list(iter_record_rows(path, record_row))
    assert rows[0] == record_row(RECORD) and rows[2]["shard"] == 1
    assert [type(r) for r in rows] == [dict, BadLine, dict, BadLine]
