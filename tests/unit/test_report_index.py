"""A run's records grouped once (``RowIndex``) and the report's answers worked out once
(``RunData.memo``): the same figures as grouping afresh, never a stale one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serverless_hpc.report.data import RowIndex, RunData, row_key
from serverless_hpc.report.tables import batch_spans, job_costs, summarize
from serverless_hpc.report.timeline import batch_timelines
from tests.unit.test_report_answers import batch_of, rec


def _run(records: list[dict[str, Any]], batches: list[dict[str, Any]]) -> RunData:
    return RunData(out=Path("."), records=records, batches=batches, meta={})


def _sweep() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two memory sizes, two repeats each, two shards a batch: the repeats share numbers."""
    records, batches = [], []
    for memory in (1024, 2048):
        for repeat in (0, 1):
            job = [
                rec(
                    memory_mb=memory,
                    repeat=repeat,
                    shards=2,
                    shard=s,
                    t_send=1000.0 + s * 0.01,
                    t_recv=1000.1 + s * 0.01 + repeat * 0.05,
                    client_ms=100.0 + s + repeat * 50,
                    cost_usd=0.001 * memory / 1024,
                )
                for s in (0, 1)
            ]
            records += job
            batches.append({**batch_of(job), "memory_mb": memory, "repeat": repeat})
    return records, batches


def test_index_groups_by_row_and_job_in_read_order() -> None:
    records, batches = _sweep()
    index = RowIndex.of(records, batches)
    assert sorted(index.records) == sorted({row_key(r) for r in records})
    for key, recs in index.records.items():
        assert recs == [r for r in records if row_key(r) == key]  # same objects, same order
    assert len(index.jobs) == 4 and all(len(recs) == 2 for recs in index.jobs.values())
    assert {job[0][4] for job in index.jobs} == {1024, 2048}  # a sweep's sizes stay apart
    assert set(index.batch_of) == set(index.jobs)


def test_per_row_figures_do_not_mix_memory_sizes() -> None:
    records, batches = _sweep()
    index = RowIndex.of(records, batches)
    costs = job_costs(index.jobs)
    assert sorted(len(v) for v in costs.values()) == [2, 2]
    by_memory = {key[4]: v for key, v in costs.items()}
    assert by_memory[1024][0] * 2 == by_memory[2048][0]
    assert set(batch_spans(batches)) == set(batch_spans(index.batches)) == set(index.records)
    rows = summarize(records, batches)
    assert rows == summarize(records, batches, index=index)
    assert [r["invocations"] for r in rows] == [4, 4]


def test_timelines_are_per_batch_of_one_memory_size() -> None:
    records, batches = _sweep()
    lines = batch_timelines(records, batches)
    # per row (memory size): its median and its slowest batch, two shards each
    assert len(lines) == 4 and all(len(t["rows"]) == 2 for t in lines)
    assert sum("at 1024 MB" in t["label"] for t in lines) == 2
    assert sum("slowest batch" in t["label"] for t in lines) == 2


def test_memo_is_worked_out_once_for_the_same_inputs() -> None:
    records, batches = _sweep()
    data = _run(records, batches)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    profile = object()
    assert data.memo("x", (profile, 3), compute) == 1
    assert data.memo("x", (profile, 3), compute) == 1  # same object, equal plain value
    assert data.memo("x", (object(), 3), compute) == 2  # an equal-looking other object
    assert data.index() is data.index()


def test_memo_is_never_stale_when_the_run_changes() -> None:
    records, batches = _sweep()
    data = _run(records, batches)
    first = data.index()
    data.records.append(rec(memory_mb=4096))  # same list, one more record
    assert (
        data.index() is not first and (("t", "sleep", 1, "natural", 4096)) in data.index().records
    )
    data.records = list(records)  # another list of the same length
    again = data.index()
    data.records = list(records)
    assert data.index() is not again
