"""Summary statistics and report files, from records made here."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from serverless_hpc.invocation import Outcome
from serverless_hpc.report import (
    RunData,
    build_report,
    checks,
    html,
    markdown_table,
    median_ci,
    percentile,
    summarize,
)
from serverless_hpc.report.plots import _fanout_plots
from serverless_hpc.rundir import InvocationRecord, RecordWriter, read_records
from tests.unit.test_report_answers import job_records, write_run


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
    j = int(ci[0]) - 100 + 1  # 1-based rank of the lower bound
    assert ci[1] == xs[n - j]
    assert _binom_coverage(n, j) >= 0.95
    assert _binom_coverage(n, j + 1) < 0.95  # one rank narrower would not cover


@pytest.mark.parametrize("n", [401, 1000, 2500])
def test_median_ci_of_a_large_sample_matches_the_exact_binomial_ranks(n: int) -> None:
    # GIVEN more values than the exact integer path handles (log-gamma instead)
    xs = list(range(n))
    ci = median_ci(xs)
    assert ci is not None
    j = int(ci[0]) + 1
    # THEN it picks the same rank as exact binomial coefficients do
    assert _binom_coverage(n, j) >= 0.95 and _binom_coverage(n, j + 1) < 0.95
    assert ci[1] == xs[n - j]


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
        "client_ms": 10.0,
        "t_send": 100.0,
        "t_recv": 100.01,
        "result": {"n": 10, "correct": 9},
    }
    base.update(kw)
    ok, error = base.pop("ok", True), base.pop("error", None)
    response = {"ok": True} if ok else {"ok": False, "error": {"type": "Timeout", "message": error}}
    outcome = Outcome(
        response=response,
        cold=bool(base.pop("cold", False)),
        breakdown=base.pop("breakdown", {}),  # type: ignore[arg-type]
        cost_usd=base.pop("cost_usd", None),  # type: ignore[arg-type]
        memory_mb=base.pop("memory_mb", None),  # type: ignore[arg-type]
        billed_ms=base.pop("billed_ms", None),  # type: ignore[arg-type]
    )
    return InvocationRecord(outcome=outcome, **base)  # type: ignore[arg-type]


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
    assert "data:image/svg+xml;base64," in html
    assert "src='http" not in html and 'src="http' not in html
    assert {
        "latency_by_fanout.svg",
        "makespan_by_fanout.svg",
        "cold_vs_warm.svg",
        "cold_start_breakdown.svg",
    } <= set(written)
    for name in ("latency_by_fanout.svg", "cold_vs_warm.svg"):
        assert ET.fromstring(written[name].read_bytes()).tag == "{http://www.w3.org/2000/svg}svg"
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


def _batch(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "target": "t",
        "workload": "dataproc",
        "shards": 1,
        "repeat": 0,
        "mode": "natural",
        "invocations": 1,
        "failed": 0,
        "items": 10,
        "makespan_ms": 10.0,
    }
    base.update(kw)
    return base


def _checks(batches: list[dict[str, object]], records: list[dict] | None = None) -> dict:
    data = RunData(out=Path("."), records=records or [], batches=batches, meta={})
    return {c.name: (c.ok, c.detail) for c in checks(data)}


DATAPROC_CHECK = "dataproc: every fan-out reduces to the identical result"
CLASSIFY_CHECK = "classify: accuracy is identical at every fan-out (same model, same images)"


def test_checks_fail_when_two_fan_outs_reduce_differently() -> None:
    # GIVEN two dataproc fan-outs (no single-shard batch) whose reduced digests differ
    batches = [
        _batch(shards=5, reduced_n=60000, reduced_sha256="a" * 64),
        _batch(shards=10, reduced_n=60000, reduced_sha256="b" * 64),
    ]
    # THEN the dataproc check fails and says how many distinct results there were
    passed, detail = _checks(batches)[DATAPROC_CHECK]
    assert not passed and detail.startswith("2 distinct reduced result(s) over 2 batches")
    # AND identical digests pass
    same = [_batch(shards=s, reduced_n=60000, reduced_sha256="a" * 64) for s in (5, 10)]
    assert _checks(same)[DATAPROC_CHECK][0]


def test_checks_fail_when_one_target_classifies_with_two_accuracies() -> None:
    # GIVEN one target whose fan-outs report different accuracies (another target is fine)
    batches = [
        _batch(workload="classify", shards=1, accuracy=0.91, model_versions=["v1"]),
        _batch(workload="classify", shards=5, accuracy=0.87, model_versions=["v0"]),
        _batch(target="u", workload="classify", shards=5, accuracy=0.9, model_versions=["v1"]),
    ]
    # THEN the classify check fails, listing the accuracies and the model versions seen
    passed, detail = _checks(batches)[CLASSIFY_CHECK]
    assert not passed
    assert "t: [0.87, 0.91]" in detail and "model versions: v0, v1" in detail


def test_checks_fail_on_failed_invocations() -> None:
    recs = [json.loads(_rec().to_json()), json.loads(_rec(ok=False, error="Timeout: x").to_json())]
    assert _checks([], recs)["no failed invocations"] == (False, "1 of 2 failed")


def test_fan_out_axis_does_not_claim_every_shard_runs_in_parallel() -> None:
    # GIVEN summary rows at two fan-outs
    rows = summarize([json.loads(_rec(shards=s).to_json()) for s in (1, 2)], [])
    # WHEN the fan-out charts are drawn
    drawn = _fanout_plots(rows)
    # THEN each one's x axis says fan-out: only the target's concurrency runs at once
    assert "latency_by_fanout.svg" in drawn  # no batches here: no makespan to draw
    for svg in drawn.values():
        titles = [
            t.text
            for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")
            # an axis title; the y one is turned on its side
            if t.get("class") == "title" and t.get("transform") is None
        ]
        assert titles == ["shards (fan-out)"]


def test_one_fan_out_level_draws_no_fan_out_curve() -> None:
    # GIVEN a workload measured at one fan-out only: a curve of one point says nothing
    rows = summarize([json.loads(_rec().to_json())], [])
    # THEN no fan-out plot is drawn (the summary table holds the figure)
    assert _fanout_plots(rows) == {}


def test_a_batch_that_could_not_be_reduced_fails_a_check(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path / "records.jsonl")
    w.write(_rec(workload="dataproc", result={}))
    w.close()
    batch = {
        "target": "t",
        "workload": "dataproc",
        "shards": 2,
        "repeat": 0,
        "mode": "natural",
        "invocations": 1,
        "failed": 0,
        "items": 10,
        "makespan_ms": 5.0,
        "combine_error": "ValueError: nothing to reduce",
    }
    (tmp_path / "batches.jsonl").write_text(json.dumps(batch) + "\n")
    html = build_report(tmp_path)["report.html"].read_text()
    assert "FAIL: dataproc: every batch&#39;s partial results can be reduced" in html


# -- compiled templates kept between processes ------------------------------------------------


@pytest.fixture
def fresh_templates() -> Iterator[None]:
    """A template environment made anew, as in a new process, and forgotten afterwards."""
    html.environment.cache_clear()
    yield
    html.environment.cache_clear()


def _compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates Jinja2 compiles from source from now on."""
    names: list[str] = []
    compile_source = jinja2.Environment.compile

    def counted(self: jinja2.Environment, source: str, name: str | None = None, *a: Any) -> Any:
        names.append(str(name))
        return compile_source(self, source, name, *a)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    return names


def test_the_next_report_reuses_the_compiled_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_templates: None
) -> None:
    monkeypatch.setenv("SHPC_CACHE_DIR", str(tmp_path / "cache"))
    run = write_run(tmp_path / "run", job_records("a", [100.0, 110.0, 120.0]))
    compiled = _compiled(monkeypatch)
    # GIVEN a first report: its templates compiled from source, kept in the user's cache
    build_report(run, plots=False)
    first = (run / "report.html").read_text()
    assert sorted(compiled) == ["base.html.j2", "report.html.j2"]
    kept = tmp_path / "cache" / "report-templates"
    assert len(list(kept.iterdir())) == 2 and kept.stat().st_mode & 0o777 == 0o700
    # WHEN the next process builds the report again
    html.environment.cache_clear()
    compiled.clear()
    build_report(run, plots=False)
    # THEN it compiles nothing, and the page is the same
    assert compiled == [] and (run / "report.html").read_text() == first


@pytest.mark.parametrize("how", ["a file in the way", "writable by others"])
def test_a_cache_directory_that_is_not_safely_the_users_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_templates: None, how: str
) -> None:
    root = tmp_path / "cache"
    if how == "a file in the way":
        root.write_text("")
    else:  # compiled code there could be swapped by another user
        (root / "report-templates").mkdir(parents=True)
        (root / "report-templates").chmod(0o777)
    monkeypatch.setenv("SHPC_CACHE_DIR", str(root))
    assert html.bytecode_cache("settings") is None
    # AND the report is built all the same, compiling its templates
    run = write_run(tmp_path / "run", job_records("a", [100.0, 110.0]))
    assert build_report(run, plots=False)["report.html"].is_file()


def test_a_compiled_template_that_cannot_be_written_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHPC_CACHE_DIR", str(tmp_path / "cache"))
    cache = html.bytecode_cache("settings")
    assert cache is not None
    shutil.rmtree(tmp_path / "cache")  # e.g. the cache cleaned up meanwhile
    env = jinja2.Environment(loader=jinja2.DictLoader({"t": "{{ 1 + 1 }}"}), bytecode_cache=cache)
    assert env.get_template("t").render() == "2"
