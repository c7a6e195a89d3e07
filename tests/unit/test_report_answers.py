"""The report's answers: statistics with known answers, the Lambda projection (a model) on
hand-computed cases, ``shpc compare`` on synthetic runs, headline sentences on hand-made
records, bad lines and incomplete runs."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import cli, driver
from serverless_hpc.driver import batchline
from serverless_hpc.pricing import Prices, lambda_invocation_cost
from serverless_hpc.pricing_data import load_prices
from serverless_hpc.report import build_report, load_run, summarize
from serverless_hpc.report.compare import compare_dirs
from serverless_hpc.report.decision import mark_pareto
from serverless_hpc.report.headline import headline
from serverless_hpc.report.profile import PlatformProfile, load_profile
from serverless_hpc.report.projection import Fit, fit_line, project
from serverless_hpc.report.stats import (
    _resampled_medians,
    bootstrap_median_ci,
    median_ratio_ci,
    percentile,
)
from serverless_hpc.report.timeline import batch_timelines

# -- helpers: a synthetic run directory -------------------------------------------------------


def rec(**kw: Any) -> dict[str, Any]:
    """One invocation record as records.jsonl holds it (hand-made, not from a target)."""
    base: dict[str, Any] = {
        "run_id": "r",
        "target": "t",
        "workload": "sleep",
        "shard": 0,
        "shards": 1,
        "items": 0,
        "repeat": 0,
        "mode": "natural",
        "cold": False,
        "ok": True,
        "error": None,
        "client_ms": 100.0,
        "t_send": 1000.0,
        "t_recv": 1000.1,
        "init_ms": None,
        "duration_ms": None,
        "load_ms": None,
        "compute_ms": None,
        "billed_ms": None,
        "memory_mb": None,
        "max_rss_mb": None,
        "cost_usd": None,
        "breakdown": {},
        "result": None,
    }
    base.update(kw)
    return base


def batch_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch summary the driver would write for ``records`` (one batch)."""
    r0 = records[0]
    ok = [r for r in records if r["ok"]]
    return {
        "run_id": r0["run_id"],
        "target": r0["target"],
        "workload": r0["workload"],
        "shards": r0["shards"],
        "repeat": r0["repeat"],
        "mode": r0["mode"],
        "invocations": len(records),
        "failed": len(records) - len(ok),
        "items": sum(r["items"] for r in records),
        "makespan_ms": (max(r["t_recv"] for r in records) - min(r["t_send"] for r in records))
        * 1e3,
        "straggler_ratio": batchline.straggler_ratio([r["client_ms"] for r in ok]),
    }


def job_records(
    target: str, times_ms: list[float], *, shards: int = 1, workload: str = "sleep", **kw: Any
) -> list[list[dict[str, Any]]]:
    """One job (batch) per time, each of ``shards`` invocations that all take that time."""
    jobs = []
    for repeat, ms in enumerate(times_ms):
        t0 = 1000.0 + repeat * 10
        jobs.append(
            [
                rec(
                    target=target,
                    workload=workload,
                    shard=i,
                    shards=shards,
                    repeat=repeat,
                    client_ms=ms,
                    t_send=t0,
                    t_recv=t0 + ms / 1e3,
                    **kw,
                )
                for i in range(shards)
            ]
        )
    return jobs


def write_run(
    out: Path, jobs: list[list[dict[str, Any]]], meta: dict[str, Any] | None = None
) -> Path:
    """A run directory holding ``jobs`` (records and batches) and a finished run.json."""
    out.mkdir(parents=True, exist_ok=True)
    recs = [r for job in jobs for r in job]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (out / "batches.jsonl").write_text("".join(json.dumps(batch_of(j)) + "\n" for j in jobs))
    default = {"run_id": out.name, "started": 1.0, "finished": 2.0}
    (out / "run.json").write_text(json.dumps(default if meta is None else meta))
    return out


TIMES = [100.0, 104.0, 98.0, 101.0, 99.0, 103.0, 97.0, 102.0, 100.5, 99.5]


# -- statistics with known answers ------------------------------------------------------------


@pytest.mark.parametrize("n", [500, 501, 15_000])
def test_bootstrap_ci_of_the_median_covers_the_true_median_of_a_known_distribution(n: int) -> None:
    # GIVEN the quantiles of Uniform(0, 1) at n evenly spaced points: median 0.5
    xs = [(i + 0.5) / n for i in range(n)]
    lo, hi = bootstrap_median_ci(xs) or (math.nan, math.nan)
    # THEN the interval holds 0.5 and is about as wide as theory says (+-1.96 * 1/(2 sqrt n))
    assert lo < 0.5 < hi
    assert 0.75 < (hi - lo) / (1.96 / math.sqrt(n)) < 1.3


@pytest.mark.parametrize("xs", [[1.0, 2.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0, 8.0]])
def test_resampled_medians_follow_the_distribution_of_resampling_and_sorting(
    xs: list[float],
) -> None:
    # GIVEN every one of the n**n equally likely resamples of n values: the exact bootstrap
    # distribution of the median (one middle value for odd n, the mean of two for even n)
    exact = Counter(statistics.median(r) for r in itertools.product(xs, repeat=len(xs)))
    total = len(xs) ** len(xs)
    # WHEN the medians are drawn from order statistics instead
    draws = 40_000
    drawn = Counter(_resampled_medians(xs, draws, 7))
    # THEN each median comes up as often as it should (within 4.5 standard errors)
    assert set(drawn) <= set(exact)
    for value, count in exact.items():
        p = count / total
        assert abs(drawn[value] / draws - p) < 4.5 * math.sqrt(p * (1 - p) / draws), value


def test_a_report_with_bootstrap_intervals_loads_no_numpy(tmp_path: Path) -> None:
    # GIVEN a run whose report bootstraps a ratio (two targets) and a break-even rate
    jobs = job_records("local-faas", TIMES, duration_ms=90.0, memory_mb=1024)
    run = write_run(tmp_path / "run", jobs + job_records("standalone", [t * 2 for t in TIMES]))
    # WHEN its report is built in a fresh interpreter, as shpc bench builds it
    code = (
        "import sys\nfrom pathlib import Path\nfrom serverless_hpc.report import build_report\n"
        f"build_report(Path({str(run)!r}))\nprint('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # THEN both intervals are there, and numpy was never imported (a fifth of a small
    # report's time)
    head = json.loads((run / "headline.json").read_text())
    (comp,) = head["workloads"]["sleep"]["comparisons"]
    assert comp["ci95"] and head["workloads"]["sleep"]["break_even"]["ci95"]
    assert out.stdout.strip() == "False"


def test_bootstrap_ci_of_a_constant_is_that_constant_and_none_for_one_value() -> None:
    assert bootstrap_median_ci([7.0] * 10) == (7.0, 7.0)
    assert bootstrap_median_ci([7.0]) is None


def test_ratio_of_medians_scaled_exactly_is_found_with_a_tight_interval() -> None:
    # GIVEN a sample and the same sample times 1.5
    ratio, ci = median_ratio_ci(TIMES, [t * 1.5 for t in TIMES]) or (0.0, None)
    # THEN the ratio is 1.5 and the interval holds it but excludes 1
    assert ratio == pytest.approx(1.5)
    assert ci is not None and ci[0] <= 1.5 <= ci[1] and ci[0] > 1.0
    # AND the two samples are resampled independently: the interval has a width although
    # their ranks match one for one
    assert ci[0] < 1.5 < ci[1]


def test_percentile_of_a_known_sequence() -> None:
    assert percentile(list(range(101)), 95) == 95
    assert percentile([1.0, 3.0], 25) == 1.5


def test_straggler_ratio_is_slowest_over_median() -> None:
    assert batchline.straggler_ratio([10.0, 10.0, 30.0]) == 3.0
    assert batchline.straggler_ratio([10.0]) is None


# -- the projection, a model, on cases computed by hand ---------------------------------------


def test_fit_line_recovers_an_exact_line_and_clamps_a_negative_slope() -> None:
    assert fit_line([(10, 30.0), (20, 50.0), (40, 90.0)]) == pytest.approx((10.0, 2.0))
    assert fit_line([(10, 50.0), (20, 30.0)]) == pytest.approx((40.0, 0.0))  # mean, no slope
    assert fit_line([(10, 30.0), (10, 50.0)]) == pytest.approx((0.0, 4.0))  # one x: via 0


def _profile(**lambda_overrides: Any) -> PlatformProfile:
    raw = json.loads(
        (Path(__file__).parents[2] / "serverless_hpc" / "platform_profile.json").read_text()
    )
    raw["lambda"].update({"invoke_overhead_ms": 25, "cold_start_ms": {"lean": 1200, "train": 4000}})
    raw["lambda"].update(lambda_overrides)
    return PlatformProfile.from_dict(raw)


FIT = Fit(intercept_ms=10.0, per_item_ms=2.0, n=8, init_ms=300.0, response_bytes_per_item=10.0)


def _cost(billed_ms: int, n: int, prices: Prices) -> float:
    one = lambda_invocation_cost(
        billed_ms=billed_ms, memory_mb=1024, architecture="x86_64", prices=prices
    )
    return n * one


def test_projection_warm_and_cold_by_hand() -> None:
    prices = load_prices()
    common: dict[str, Any] = {
        "fit": FIT,
        "total_items": 100,
        "fanout": 4,
        "memory_mb": 1024,
        "cold_platform_ms": 1200.0,
        "profile": _profile(),
        "prices": prices,
    }
    # 4 shards of 25 items: 10 + 2 * 25 = 60 ms each; invoke overhead 25 ms
    warm = project(cold=False, **common)
    assert warm["flags"] == [] and warm["waves"] == 1
    assert warm["makespan_ms"] == pytest.approx(85.0)
    # 1024 MB = 1 GB: 4 x (0.060 s x 1 GB x rate + request)
    assert warm["cost_usd"] == pytest.approx(_cost(60, 4, prices))
    assert warm["cost_usd"] == pytest.approx(4 * (0.060 * 0.0000166667 + 0.0000002))
    # cold: + platform 1200 ms + the run's own init 300 ms; only the function's own init is
    # billed (the platform's part comes before INIT)
    cold = project(cold=True, **common)
    assert cold["makespan_ms"] == pytest.approx(25 + 60 + 1500)
    assert cold["cost_usd"] == pytest.approx(_cost(360, 4, prices))


def test_projection_uneven_shards_waves_and_the_init_cap() -> None:
    prices = load_prices()
    # 10 items over 3 shards: 4, 3, 3 items -> 18, 16, 16 ms; concurrency 2 -> 2 waves
    p = project(
        fit=FIT,
        total_items=10,
        fanout=3,
        memory_mb=2048,
        cold=False,
        cold_platform_ms=0.0,
        profile=_profile(concurrency_limit=2),
        prices=prices,
    )
    assert p["waves"] == 2
    # the second wave waits for the burst window (10 s) since a shard is shorter
    assert p["makespan_ms"] == pytest.approx(25 + 18 + 10_000)
    per_gb_s = 2 * 0.0000166667
    assert p["cost_usd"] == pytest.approx((0.018 + 0.016 + 0.016) * per_gb_s + 3 * 0.0000002)
    # a 20 s init is billed only up to the 10 s INIT cap
    cold = project(
        fit=Fit(10.0, 2.0, 8, 20_000.0, 0.0),
        total_items=10,
        fanout=1,
        memory_mb=1024,
        cold=True,
        cold_platform_ms=1_000.0,
        profile=_profile(),
        prices=prices,
    )
    assert cold["cost_usd"] == pytest.approx(_cost(30 + 10_000, 1, prices))


def test_projection_flags_plans_that_break_a_limit_instead_of_projecting_them() -> None:
    prices, profile = load_prices(), _profile()
    base: dict[str, Any] = {
        "memory_mb": 1024,
        "cold": False,
        "cold_platform_ms": 0.0,
        "profile": profile,
    }
    too_long = project(
        fit=Fit(0.0, 1000.0, 1, None, 0.0), total_items=1000, fanout=1, prices=prices, **base
    )
    assert "15-minute limit" in too_long["flags"][0] and "makespan_ms" not in too_long
    too_big = project(
        fit=Fit(0.0, 1.0, 1, None, 10 * 2**20), total_items=10, fanout=1, prices=prices, **base
    )
    assert "MB limit" in too_big["flags"][0]
    too_many = project(fit=FIT, total_items=10, fanout=20, prices=prices, **base)
    assert "exceed the 10 items" in too_many["flags"][0]
    bad_memory = project(
        fit=FIT, total_items=10, fanout=1, prices=prices, **{**base, "memory_mb": 20_000}
    )
    assert "outside 128..10240" in bad_memory["flags"][0]


def test_report_labels_the_projection_as_a_model_and_compares_it_with_real_lambda(
    tmp_path: Path,
) -> None:
    # GIVEN a run with local-faas dataproc shards and real lambda batches of the same plan
    jobs = []
    for shards in (1, 2):
        jobs += job_records(
            "local-faas",
            [200.0 / shards] * 3,
            shards=shards,
            workload="dataproc",
            items=10000 // shards,
            duration_ms=200.0 / shards,
            memory_mb=2048,
        )
    lam = job_records(
        "lambda",
        [150.0] * 2,
        shards=2,
        workload="dataproc",
        items=5000,
        duration_ms=140.0,
        memory_mb=2048,
        cost_usd=1e-6,
    )
    jobs += lam
    meta = {"run_id": "p", "finished": 1.0, "config": {"params": {"dataproc": {"split": "test"}}}}
    written = build_report(write_run(tmp_path / "p", jobs, meta))
    html = written["report.html"].read_text()
    # THEN the projection is labelled a model, with its profile date, and judged against lambda
    assert "Projection to Lambda (a model, not a measurement)" in html
    assert load_profile().as_of in html
    assert "MODEL against measurement" in html
    assert "projection_lambda_model.svg" in written
    # AND the error is the hand-computed one: the line through local-faas is 0.02 ms/item, so
    # 2 warm shards of 5000 items take the invoke overhead + 100 ms against 150 ms measured
    from serverless_hpc.report.projection import against_measurement, projection

    data = load_run(tmp_path / "p")
    (v,) = against_measurement(data, projection(data, load_profile(), load_prices()))
    assert (v["fanout"], v["cold"], v["memory_mb"]) == (2, False, 2048)
    assert v["measured_ms"] == pytest.approx(150.0)
    invoke = load_profile().lambda_.invoke_overhead_ms  # the shipped profile's figure
    assert v["projected_ms"] == pytest.approx(invoke + 100.0)
    assert v["error_pct"] == pytest.approx((invoke + 100 - 150) / 150 * 100)


# -- compare on synthetic runs ----------------------------------------------------------------


def test_compare_identical_runs_finds_no_significant_change(tmp_path: Path) -> None:
    jobs = job_records("a", TIMES) + job_records("b", TIMES)
    base = write_run(tmp_path / "base", jobs)
    new = write_run(tmp_path / "new", jobs)
    result = compare_dirs(base, new)
    assert {r["verdict"] for r in result["rows"]} == {"no significant change"}
    assert cli.main(["compare", str(base), str(new), "--fail-on-regression", "10"]) == 0
    assert (new / "compare.html").is_file()


def test_compare_flags_durations_times_one_and_a_half_and_fails_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_run(tmp_path / "base", job_records("a", TIMES) + job_records("b", TIMES))
    slow = [t * 1.5 for t in TIMES]
    new = write_run(tmp_path / "new", job_records("a", slow) + job_records("b", TIMES))
    rows = {r["key"]["target"]: r for r in compare_dirs(base, new)["rows"]}
    assert rows["a"]["verdict"] == "slower" and rows["a"]["change_pct"] == pytest.approx(50.0)
    assert rows["b"]["verdict"] == "no significant change"
    code = cli.main(["compare", str(base), str(new), "--fail-on-regression", "10"])
    assert code == 1
    assert "a/sleep/1/natural is +50.0% slower" in capsys.readouterr().err
    # a threshold above the change does not fail
    assert cli.main(["compare", str(base), str(new), "--fail-on-regression", "60"]) == 0
    # and the reverse direction is "faster"
    assert {r["key"]["target"]: r["verdict"] for r in compare_dirs(new, base)["rows"]}["a"] == (
        "faster"
    )


def test_compare_json_shape_and_rows_only_one_run_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_run(tmp_path / "base", job_records("a", TIMES) + job_records("b", TIMES))
    new = write_run(tmp_path / "new", job_records("a", TIMES) + job_records("c", TIMES))
    capsys.readouterr()
    assert cli.main(["compare", str(base), str(new), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["base"] == "base" and out["new"] == "new" and "bootstrap" in out["method"]
    (row,) = out["rows"]
    assert set(row) == {
        "key",
        "base_median_ms",
        "new_median_ms",
        "change_pct",
        "ci_low_pct",
        "ci_high_pct",
        "verdict",
    }
    assert row["key"] == {"target": "a", "workload": "sleep", "shards": 1, "mode": "natural"}
    assert [k["target"] for k in out["only_in_base"]] == ["b"]
    assert [k["target"] for k in out["only_in_new"]] == ["c"]
    assert not (new / "compare.html").exists()  # --json prints; it writes no file unasked


def test_compare_refuses_a_directory_without_records(tmp_path: Path) -> None:
    base = write_run(tmp_path / "base", job_records("a", TIMES))
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(base), str(tmp_path / "empty")]) == 2


# -- headline sentences on hand-made records --------------------------------------------------


def _headline(jobs: list[list[dict[str, Any]]], tmp_path: Path) -> dict[str, Any]:
    data = load_run(write_run(tmp_path / "h", jobs))
    return headline(data, summarize(data.records, data.batches))


def test_headline_calls_identical_targets_a_tie(tmp_path: Path) -> None:
    h = _headline(job_records("a", TIMES) + job_records("b", TIMES), tmp_path)
    (comp,) = h["workloads"]["sleep"]["comparisons"]
    assert comp["verdict"] == "tie"
    assert any("a and b are tied: no significant difference" in s for s in h["sentences"])


def test_headline_names_the_winner_with_ratio_and_interval(tmp_path: Path) -> None:
    h = _headline(
        job_records("fast", TIMES) + job_records("slow", [t * 2 for t in TIMES]), tmp_path
    )
    (comp,) = h["workloads"]["sleep"]["comparisons"]
    assert comp["verdict"] == "faster" and comp["ratio"] == pytest.approx(2.0)
    (sentence,) = [s for s in h["sentences"] if "is faster than" in s]
    assert sentence.startswith("sleep: fast is faster than slow:")
    assert (
        "2.00x (95% CI" in sentence
        and "rows fast/sleep/1/natural, slow/sleep/1/natural" in sentence
    )


def test_headline_for_a_single_target(tmp_path: Path) -> None:
    h = _headline(job_records("only", TIMES), tmp_path)
    assert any(
        s.startswith("sleep: only only was measured; its best time to result is 100 ms")
        for s in h["sentences"]
    )
    assert h["workloads"]["sleep"]["comparisons"] == []


def test_headline_says_a_target_failed(tmp_path: Path) -> None:
    broken = job_records("down", [50.0, 50.0], ok=False, error="Timeout: x")
    h = _headline(job_records("up", TIMES) + broken, tmp_path)
    assert any(
        "sleep on down: no successful job; 2 of 2 invocations failed" in s for s in h["sentences"]
    )
    assert any("only up was measured" in s for s in h["sentences"])


def test_headline_on_missing_and_partial_cost(tmp_path: Path) -> None:
    none = _headline(job_records("a", TIMES) + job_records("b", TIMES), tmp_path / "1")
    assert any("no target of this run measured a cost" in s for s in none["sentences"])
    some = _headline(
        job_records("a", TIMES, cost_usd=2e-5) + job_records("b", TIMES), tmp_path / "2"
    )
    (s,) = [s for s in some["sentences"] if "cost per job" in s]
    assert "a $2e-05" in s and "b not measured" in s


def test_headline_cold_start_penalty_and_time_to_accuracy(tmp_path: Path) -> None:
    jobs = job_records("a", TIMES)
    jobs[0][0]["cold"] = True
    jobs[0][0]["client_ms"] = 900.0
    run = write_run(tmp_path / "c", jobs)
    batches = [json.loads(x) for x in (run / "batches.jsonl").read_text().splitlines()]
    batches[1].update(workload="train", test_accuracy=0.875)
    (run / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches))
    data = load_run(run)
    h = headline(data, summarize(data.records, data.batches))
    warm = statistics.median(TIMES[1:])
    assert any(
        f"a cold start costs {900 - warm:.0f} ms more per invocation" in s for s in h["sentences"]
    )
    # a batch with a test accuracy but no per-epoch progress: its final accuracy, no time to 0.90
    (s,) = (x for x in h["sentences"] if "final test accuracy" in x)
    assert s.startswith("train on a, 1 worker: final test accuracy 0.8750 in ")
    assert "no per-epoch test accuracy recorded, so no time to 0.90" in s


def test_headline_json_is_written_and_printed_by_shpc_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "r", job_records("a", TIMES))
    assert cli.main(["report", str(run)]) == 0
    head = json.loads((run / "headline.json").read_text())
    out = capsys.readouterr().out
    assert head["sentences"] and head["sentences"][0] in out


# -- a report that survives bad lines, and says when a run is incomplete ----------------------


def test_bad_lines_are_skipped_counted_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "bad", job_records("a", TIMES))
    good = (run / "records.jsonl").read_text().splitlines()
    injected = [
        good[0],
        "garbage {",
        json.dumps([1, 2, 3]),
        good[1].replace('"client_ms": 104.0', '"client_ms": NaN'),
        json.dumps({"target": "a"}),
        good[2].replace('"client_ms": 98.0', '"client_ms": 1e400'),
        *good[3:],
    ]
    (run / "records.jsonl").write_text("\n".join(injected) + "\n")
    with (run / "batches.jsonl").open("a") as fh:
        fh.write('{"target": "a", "workload": "sleep", "shards": "x"}\n')
    capsys.readouterr()
    assert cli.main(["report", str(run)]) == 0
    data = load_run(run)
    assert len(data.records) == len(TIMES) - 2  # the NaN and the infinite ones are gone too
    assert [b.line for b in data.bad_lines["records.jsonl"]] == [2, 3, 4, 5, 6]
    assert [b.line for b in data.bad_lines["batches.jsonl"]] == [len(TIMES) + 1]
    out = capsys.readouterr().out
    assert "records.jsonl: 5 bad line(s) skipped: line 2: not JSON; line 3:" in out
    html = (run / "report.html").read_text()
    assert "line 4: NaN is not a number a record may hold" in html
    assert "line 6: field &#39;client_ms&#39; is not a finite number" in html


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"run_id": "x", "aborted": {"by": "KeyboardInterrupt"}}, "aborted (KeyboardInterrupt)"),
        ({"run_id": "x", "started": 1.0}, "never finished"),
        ({"run_id": "x", "finished": 2.0, "planned_invocations": 15}, "5 of 15 planned"),
    ],
)
def test_an_incomplete_run_says_so(tmp_path: Path, meta: dict[str, Any], expected: str) -> None:
    run = write_run(tmp_path / "inc", job_records("a", TIMES), meta)
    build_report(run)
    head = json.loads((run / "headline.json").read_text())
    assert any(expected in s and s.startswith("Incomplete run:") for s in head["sentences"])
    assert expected in (run / "report.html").read_text()


def test_a_complete_run_is_not_called_incomplete(tmp_path: Path) -> None:
    meta = {"run_id": "x", "finished": 2.0, "planned_invocations": len(TIMES)}
    run = write_run(tmp_path / "ok", job_records("a", TIMES), meta)
    assert load_run(run).incomplete == []


# -- timeline, Pareto front, escaping ---------------------------------------------------------


def test_timeline_rows_split_the_client_time() -> None:
    recs = [
        rec(
            shard=0,
            shards=2,
            client_ms=100.0,
            t_send=10.0,
            t_recv=10.1,
            cold=True,
            init_ms=30.0,
            duration_ms=50.0,
            compute_ms=40.0,
        ),
        rec(
            shard=1,
            shards=2,
            client_ms=50.0,
            t_send=10.05,
            t_recv=10.1,
            duration_ms=45.0,
            compute_ms=45.0,
        ),
    ]
    (tl,) = batch_timelines(recs, [{**batch_of(recs)}])
    first, second = tl["rows"]
    assert (first["wait_ms"], first["init_ms"], first["load_ms"], first["compute_ms"]) == (
        pytest.approx(20.0),
        30.0,
        10.0,
        40.0,
    )
    assert second["send_ms"] == pytest.approx(50.0) and second["wait_ms"] == pytest.approx(5.0)
    assert tl["straggler_ratio"] == pytest.approx(100 / 75)


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [
        {"workload": "w", "time_ms": 1.0, "cost_usd": 5.0},
        {"workload": "w", "time_ms": 2.0, "cost_usd": 2.0},
        {"workload": "w", "time_ms": 3.0, "cost_usd": 3.0},  # dominated by the second
        {"workload": "w", "time_ms": 4.0, "cost_usd": None},
    ]
    mark_pareto(pts)
    assert [p["pareto"] for p in pts] == [True, True, False, False]


def test_html_escapes_what_records_hold(tmp_path: Path) -> None:
    jobs = job_records("a", [1.0, 2.0], ok=False, error="<script>alert(1)</script>")
    html = build_report(write_run(tmp_path / "e", jobs))["report.html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_batch_summary_carries_the_straggler_ratio() -> None:
    from serverless_hpc.invocation import Outcome
    from serverless_hpc.rundir import InvocationRecord

    batch = driver.Batch("t", "sleep", 1, 0, "natural", ({"workload": "sleep"},) * 3, (0, 0, 0))
    recs = [
        InvocationRecord(
            run_id="r",
            target="t",
            workload="sleep",
            shard=i,
            shards=3,
            items=0,
            repeat=0,
            mode="natural",
            client_ms=ms,
            t_send=1.0,
            t_recv=1.0 + ms / 1e3,
            outcome=Outcome(response={"ok": True}, cold=False),
        )
        for i, ms in enumerate([10.0, 20.0, 60.0])
    ]
    assert batchline.batch_summary(batch, recs, [])["straggler_ratio"] == 3.0


def test_report_without_plots_writes_no_chart_and_still_answers(tmp_path: Path) -> None:
    run = write_run(tmp_path / "np", job_records("a", TIMES) + job_records("b", TIMES))
    assert cli.main(["report", str(run), "--no-plots"]) == 0
    assert not list(run.glob("*.svg")) and not list(run.glob("*.png"))
    html = (run / "report.html").read_text()
    assert "data:image/" not in html and "The answer" in html
    # AND the same run with charts has them: the flag, not the data, left them out
    assert cli.main(["report", str(run)]) == 0
    assert list(run.glob("*.svg")) and "data:image/svg+xml" in (run / "report.html").read_text()


def test_headline_break_even_is_labelled_a_model_when_the_cost_is_modelled(
    tmp_path: Path,
) -> None:
    data = load_run(write_run(tmp_path / "be", job_records("a", TIMES)))
    be = [
        {
            "key": "a/sleep/1/natural",
            "workload": "sleep",
            "cost_basis": "model: Lambda prices x measured durations",
            "cost_usd": 2e-6,
            "instance_type": "t3.xlarge",
            "instance_hourly_usd": 0.2,
            "break_even_per_hour": 100_000.0,
            "ci95_low": 90_000.0,
            "ci95_high": 110_000.0,
        }
    ]
    h = headline(data, summarize(data.records, data.batches), be, vm_type="t3.xlarge")
    (s,) = [s for s in h["sentences"] if "always-on" in s]
    assert "(MODEL, Lambda prices x measured durations)" in s
    assert "cheaper above 100,000 jobs per hour (95% CI 90,000-110,000)" in s
    assert h["workloads"]["sleep"]["break_even"]["model"] is True


def test_compare_says_when_it_cannot_write_its_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_run(tmp_path / "base", job_records("a", TIMES))
    new = write_run(tmp_path / "new", job_records("a", TIMES))
    target = tmp_path / "no-such-dir" / "compare.html"
    assert cli.main(["compare", str(base), str(new), "--html", str(target)]) == 2
    assert f"error: cannot write {target}" in capsys.readouterr().err


def test_oversubscribed_and_queued_rows_are_flagged_and_never_cited(tmp_path: Path) -> None:
    # GIVEN a target measured at 1 shard fairly, at 2 shards on an oversubscribed machine
    # (slower: the machine's contention), and at 4 shards with shards waiting for a slot
    fair = job_records("local", TIMES)
    over = job_records("local", [t / 2 for t in TIMES], shards=2, oversubscribed=True)
    for job in over:  # a cold start there looks 8 s dearer: contention, not a cold start
        job[0]["cold"], job[0]["client_ms"] = True, 8000.0
    queued = job_records("local", [t / 4 for t in TIMES], shards=4)
    run = write_run(tmp_path / "q", fair + over + queued)
    batches = [json.loads(x) for x in (run / "batches.jsonl").read_text().splitlines()]
    for b in batches:
        b["max_parallel"] = 2
    (run / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches))
    data = load_run(run)
    rows = summarize(data.records, data.batches)
    # THEN the summary says what the flagged rows measure
    by_shards = {r["shards"]: r for r in rows}
    assert by_shards[1]["flags"] == "" and by_shards[1]["oversubscribed"] is None
    assert by_shards[2]["oversubscribed"] is True and "oversubscribed" in by_shards[2]["flags"]
    assert by_shards[4]["queued_shards"] == 2 and "2 shard(s) queued" in by_shards[4]["flags"]
    # AND the headline cites neither as the platform's figure, and says why they are left out
    h = headline(data, rows)
    text = " ".join(h["sentences"])
    assert "at 1 shard(s)" in text and "at 2 shard(s)" not in text and "at 4 shard(s)" not in text
    assert "costs 8" not in text  # no contention passed off as a cold-start penalty
    (said,) = [s for s in h["sentences"] if "do not measure the platform" in s]
    assert "more CPU in flight than this machine has" in said and "in-flight slot" in said
    assert h["workloads"]["sleep"]["targets"]["local"]["not_platform_rows"] == [
        "local/sleep/2/natural",
        "local/sleep/4/natural",
    ]


def test_a_target_with_only_flagged_rows_is_cited_with_what_they_measure(tmp_path: Path) -> None:
    # GIVEN a target whose only row ran oversubscribed (a training wider than the machine)
    jobs = job_records("local", TIMES, oversubscribed=True)
    data = load_run(write_run(tmp_path / "o", jobs))
    h = headline(data, summarize(data.records, data.batches))
    text = " ".join(h["sentences"])
    # THEN it is not called a failure, and its figure is said to be the machine's
    assert "no successful job" not in text
    assert "oversubscribed: this machine's figure, not the platform's" in text
