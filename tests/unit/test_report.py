"""Summary statistics and report files, from records made here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from serverless_hpc.records import InvocationRecord, RecordWriter, read_records
from serverless_hpc.report import build_report, markdown_table, median_ci, percentile, summarize


def _binom_coverage(n: int, j: int) -> float:
    return sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2**n


@pytest.mark.parametrize("n", range(1, 40))
def test_median_ci_is_the_narrowest_order_statistic_interval_with_95_percent(n: int) -> None:
    xs = list(range(100, 100 + n))
    ci = median_ci(xs)
    if n < 6:
        assert ci is None  # no interval of order statistics reaches 95% coverage
        return
    assert ci is not None
    j = ci[0] - 100 + 1  # 1-based rank of the lower bound
    assert ci[1] == xs[n - j]
    assert _binom_coverage(n, j) >= 0.95
    assert _binom_coverage(n, j + 1) < 0.95  # one rank narrower would not cover


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    assert percentile([], 95) is None


def _rec(**kw: object) -> InvocationRecord:
    base = {
        "run_id": "r",
        "target": "t",
        "workload": "classify",
        "shard": 0,
        "shards": 2,
        "items": 10,
        "repeat": 0,
        "mode": "natural",
        "cold": False,
        "ok": True,
        "error": None,
        "client_ms": 10.0,
        "t_send": 100.0,
        "t_recv": 100.01,
        "result": {"n": 10, "correct": 9},
    }
    base.update(kw)
    return InvocationRecord(**base)  # type: ignore[arg-type]


def test_summary_separates_cold_warm_and_counts_failures(tmp_path: Path) -> None:
    recs = [
        _rec(cold=True, client_ms=500.0),
        *[_rec(client_ms=float(10 + i)) for i in range(7)],
        _rec(ok=False, error="Timeout: x", client_ms=60000.0, result=None),
    ]
    rows = summarize([json.loads(r.to_json()) for r in recs], [])
    (row,) = rows
    assert row["invocations"] == 9 and row["failed"] == 1 and row["cold"] == 1
    assert row["cold_median_ms"] == 500.0
    assert row["warm_median_ms"] == 13.0
    assert row["median_ms"] == 13.5  # failures are excluded from latency statistics
    assert row["ci95_low_ms"] is not None
    table = markdown_table(rows)
    assert table.count("\n") == 3 and "| t | classify | 2 | natural | 9 | 1 | 1 |" in table


def test_records_survive_a_crash_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    w = RecordWriter(path)
    w.write(_rec())
    w.write(_rec(shard=1))
    w.close()
    with path.open("a") as fh:
        fh.write('{"run_id": "r", "tar')  # the process died while writing
    assert [r["shard"] for r in read_records(path)] == [0, 1]


def test_report_is_self_contained(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path / "records.jsonl")
    for i in range(6):
        for shards in (1, 2):
            w.write(
                _rec(
                    shards=shards,
                    repeat=i,
                    cold=i == 0,
                    client_ms=10.0 + i,
                    breakdown={"process_start_ms": 1.0, "import_ms": 2.0} if i == 0 else {},
                )
            )
    w.close()
    batches = [
        {
            "target": "t",
            "workload": "classify",
            "shards": s,
            "repeat": i,
            "mode": "natural",
            "invocations": 1,
            "failed": 0,
            "items": 10,
            "makespan_ms": 10.0 + i,
            "accuracy": 0.9,
            "model_versions": ["v"],
        }
        for s in (1, 2)
        for i in range(6)
    ]
    (tmp_path / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches))
    written = build_report(tmp_path)
    html = written["report.html"].read_text()
    assert "data:image/png;base64," in html and "src='http" not in html and 'src="http' not in html
    assert {
        "latency_by_fanout.png",
        "makespan_by_fanout.png",
        "cold_vs_warm.png",
        "cold_start_breakdown.png",
    } <= set(written)
    for name in ("latency_by_fanout.png", "cold_vs_warm.png"):
        assert written[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PASS: classify: accuracy is identical at every fan-out" in html
    csv_lines = written["summary.csv"].read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("target,workload,shards,mode")


def test_break_even_section_appears_for_priced_lambda_records(tmp_path: Path) -> None:
    from serverless_hpc.pricing import ec2_hourly
    from serverless_hpc.pricing_data import load_prices

    w = RecordWriter(tmp_path / "records.jsonl")
    for i, cost in enumerate([2e-6, 4e-6, 3e-6]):
        w.write(_rec(target="lambda", shard=i, cost_usd=cost))
    w.write(_rec(target="lambda", shard=3, cold=True, cost_usd=9e-6))  # warm ones are the basis
    w.close()
    written = build_report(tmp_path)
    html = written["report.html"].read_text()
    expected = ec2_hourly("t3.xlarge", load_prices()) / 3e-6
    assert "Break-even: Lambda against an always-on instance" in html
    assert f"{expected:,.0f}" in html


def test_no_break_even_section_without_lambda_costs(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path / "records.jsonl")
    w.write(_rec())
    w.close()
    assert "Break-even" not in build_report(tmp_path)["report.html"].read_text()
