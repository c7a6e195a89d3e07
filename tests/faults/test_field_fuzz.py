"""Every field of a record and of a batch line, given a value of the wrong type, one line at a
time: the report is still built, and a line whose typed field is wrong is skipped and named.

The cases come from the run directory's own schemas (``RECORD_SCHEMA``, ``BATCH_SCHEMA``),
and a record the driver writes must have exactly the schema's fields: a field cannot be added
to the record without it being fuzzed here. Workload fields of a batch line (an accuracy, a
digest, model versions) are fuzzed too: the report must never crash on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from serverless_hpc.contract import error_response
from serverless_hpc.invocation import Outcome
from serverless_hpc.report import build_report
from serverless_hpc.rundir import BATCH_SCHEMA, RECORD_SCHEMA, InvocationRecord

#: Values of every JSON type (and out-of-range numbers): each field gets those its schema
#: does not allow.
WRONG: tuple[Any, ...] = (None, "x", -1, 1.5e300, True, [1], {"a": 1})


def _record(**kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "run_id": "r",
        "target": "local-faas",
        "workload": "sleep",
        "shard": 0,
        "shards": 1,
        "items": 1,
        "repeat": 0,
        "mode": "natural",
        "client_ms": 100.0,
        "t_send": 1000.0,
        "t_recv": 1000.1,
    }
    ok = kw.pop("ok", True)
    cost = kw.pop("cost_usd", 1e-6)
    result = kw.pop("result", {"slept_s": 0.0})
    fields.update(kw)
    response = (
        {"ok": True, "result": result, "timings": {"load_ms": 1.0, "compute_ms": 2.0}}
        if ok
        else error_response("Timeout", "late")
    )
    outcome = Outcome(
        response=response,
        cold=fields.pop("cold", False),
        init_ms=5.0,
        duration_ms=90.0,
        billed_ms=91.0,
        memory_mb=1024,
        max_rss_mb=50.0,
        cost_usd=cost,
        breakdown={"import_ms": 3.0},
        extra={"wait_ms": 1.0},
        instance="i-1",
        resources={"cpus": 1.0},
        oversubscribed=False,
    )
    return InvocationRecord(**fields, outcome=outcome, result=result if ok else None).to_dict()


def _base() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records and batch lines of several workloads and shapes, every field present."""
    records = [
        _record(repeat=r, shard=s, shards=2, t_send=1000.0 + 10 * r, t_recv=1000.1 + 10 * r)
        for r in range(3)
        for s in range(2)
    ]
    records.append(_record(repeat=3, ok=False, cold=True, t_send=1040.0, t_recv=1041.0))
    records += [
        _record(
            workload="train",
            leg=leg,
            t_send=2000.0 + 100 * leg,
            t_recv=2100.0 + 100 * leg,
            result={"status": "done" if leg else "continue", "epoch": leg + 1},
        )
        for leg in range(2)
    ]
    records += [
        _record(
            workload="train",
            repeat=1,
            shard=i,
            shards=2,
            round=0,
            role="worker" if i < 2 else "combine",
            t_send=3000.0 + i,
            t_recv=3050.0 + i,
            result={"status": "done", "items": 10},
        )
        for i in range(3)
    ]
    batch = {
        "run_id": "r",
        "target": "local-faas",
        "workload": "sleep",
        "memory_mb": 1024,
        "oversubscribed": False,
        "shards": 2,
        "max_parallel": 64,
        "workers": 1,
        "repeat": 0,
        "mode": "natural",
        "invocations": 2,
        "failed": 0,
        "items": 2,
        "makespan_ms": 100.0,
        "straggler_ratio": 1.0,
    }
    progress = [
        {"epoch": e, "test_accuracy": 0.85 + 0.03 * e, "train_loss": 0.5, "t_unix": 2050.0 + 70 * e}
        for e in (1, 2)
    ]
    batches = [
        {**batch, "repeat": r, "combine_error": "ValueError: x" if r == 2 else None}
        for r in range(3)
    ]
    for b in batches:
        if b["combine_error"] is None:
            del b["combine_error"]
    batches += [
        {
            **batch,
            "workload": "train",
            "shards": 1,
            "invocations": 2,
            "legs": 2,
            "cost_usd": 2e-6,
            "billed_ms": 182.0,
            "progress": progress,
            "test_accuracy": 0.91,
            "model_version": "v1",
        },
        {
            **batch,
            "workload": "train",
            "repeat": 1,
            "workers": 2,
            "invocations": 3,
            "legs": 1,
            "cost_usd": None,
            "billed_ms": None,
            "progress": progress[:1],
            "test_accuracy": 0.88,
            "model_version": "v2",
        },
        {
            **batch,
            "workload": "classify",
            "classified": 10,
            "accuracy": 0.9,
            "model_versions": ["v1"],
        },
        {**batch, "workload": "dataproc", "reduced_n": 10, "reduced_sha256": "ab" * 32},
    ]
    assert set(BATCH_SCHEMA) <= {k for b in batches for k in b}, "fuzz every typed batch field"
    return records, batches


def _write(out: Path, records: list[dict[str, Any]], batches: list[dict[str, Any]]) -> Path:
    out.mkdir(parents=True)
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches))
    (out / "run.json").write_text(json.dumps({"run_id": "r", "started": 1.0, "finished": 2.0}))
    return out


def _allowed(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def test_a_record_has_exactly_the_schemas_fields() -> None:
    # a new field of the record must be declared in the schema, and so fuzzed below
    records, _ = _base()
    assert all(set(r) == set(RECORD_SCHEMA) for r in records)


def _cases(kind: str) -> list[Any]:
    records, batches = _base()
    rows = records if kind == "record" else batches
    schema = RECORD_SCHEMA if kind == "record" else BATCH_SCHEMA
    out = []
    seen: set[tuple[str, str]] = set()
    for index, row in enumerate(rows):
        # each field once per workload (the first line that has it): its readers differ
        for key in sorted(row):
            if (str(row.get("workload")), key) in seen:
                continue
            seen.add((str(row.get("workload")), key))
            for value in WRONG:
                types = schema.get(key)
                if types is not None and _allowed(value, types):
                    continue
                if types is None and type(value) is type(row[key]):
                    continue
                out.append(pytest.param(index, key, value, id=f"{index}-{key}-{value!r:.12}"))
    return out


def _check(tmp_path: Path, kind: str, index: int, key: str, value: Any) -> None:
    records, batches = _base()
    rows = records if kind == "record" else batches
    rows[index] = {**rows[index], key: value}
    out = _write(tmp_path / "run", records, batches)
    # WHEN the report is built (charts too: they read the same rows)
    written = build_report(out, plots=True)
    # THEN it is built; a wrongly typed schema field skips that one line, and the page says so
    page = written["report.html"].read_text(encoding="utf-8")
    schema = RECORD_SCHEMA if kind == "record" else BATCH_SCHEMA
    if key in schema:
        name = "records.jsonl" if kind == "record" else "batches.jsonl"
        said = f"{name}: 1 bad line(s) skipped: line {index + 1}: field {key!r}"
        assert str(markupsafe.escape(said)) in page


@pytest.mark.parametrize(("index", "key", "value"), _cases("record"))
def test_a_record_field_of_the_wrong_type(tmp_path: Path, index: int, key: str, value: Any) -> None:
    _check(tmp_path, "record", index, key, value)


@pytest.mark.parametrize(("index", "key", "value"), _cases("batch"))
def test_a_batch_field_of_the_wrong_type(tmp_path: Path, index: int, key: str, value: Any) -> None:
    _check(tmp_path, "batch", index, key, value)
