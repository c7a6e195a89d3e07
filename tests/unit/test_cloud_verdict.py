"""The cloud verdict on a hand-made run: both sides projected, the cheaper one named with its
rate, credits counted, the speed factor applied, the answer first in every output, and
``shpc project`` answering what-ifs with the README's exit codes."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import cli
from serverless_hpc.pricing_data import load_prices
from serverless_hpc.report import build_report, cloud, decision, load_run, summarize, verdict
from serverless_hpc.report.build import terminal_summary
from serverless_hpc.report.headline import dashboard_verdict
from serverless_hpc.report.profile import load_profile
from tests import synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run.write(tmp_path_factory.mktemp("cloud") / "run")


def _verdicts(run: Path, profile: Any = None, **opts: Any) -> dict[str, dict[str, Any]]:
    data = load_run(run)
    rows = summarize(data.records, data.batches)
    prices, profile = load_prices(), profile or load_profile()
    configs = decision.configurations(data, rows, prices, profile)
    return verdict.verdicts(data, configs, prices, profile, cloud.Options(**opts))


def test_each_workload_gets_one_verdict_with_both_sides_marked_model(run: Path) -> None:
    v = _verdicts(run, rates=(10.0, 10.0))
    assert set(v) == {"classify", "dataproc", "train"}
    c = v["classify"]
    assert c["choice"] == "functions"
    f, m = c["functions"], c["vm"]
    assert f["cost_per_job_usd"] < m["cost_per_job_usd"]
    assert {f["time_basis"], f["cost_basis"], m["time_basis"], m["cost_basis"]} == {"model"}
    assert f["config"].startswith("Lambda ") and m["instance"] in load_prices().ec2.instances
    # the sentence carries the choice, the rate, both sides' figures and their basis
    s = c["sentence"]
    assert s.startswith("classify at 10 jobs/h: functions, ")
    assert s.count("(model)") == 2 and "a VM wins above" in s


def test_the_answer_changes_where_it_says(run: Path) -> None:
    v = _verdicts(run, rates=(1.0, 1e6))["classify"]
    (change,) = v["changes_at"]
    below = _verdicts(run, rates=(change * 0.9, change * 0.9))["classify"]
    above = _verdicts(run, rates=(change * 1.1, change * 1.1))["classify"]
    assert (below["choice"], above["choice"]) == ("functions", "vm")
    assert [s["choice"] for s in v["segments"]] == ["functions", "vm"]
    assert "functions below" in v["sentence"] and "a VM above" in v["sentence"]


def test_surplus_credits_are_charged_to_a_busy_burstable_vm(run: Path) -> None:
    data = load_run(run)
    rows = summarize(data.records, data.batches)
    prices, profile = load_prices(), load_profile()
    configs = decision.configurations(data, rows, prices, profile)
    job = cloud.vm_jobs(data, configs, profile, prices)["train"]
    assert job.vcpus == 2.0 and job.time_ms == pytest.approx(290_005.0)
    t3 = prices.ec2.instances["t3.xlarge"]
    # 10 trainings an hour: 10 x 580 vCPU-s = 1.61 vCPUs on average, above the 1.6 baseline
    always, per_job = cloud.vm_side(job, t3, 10.0, mode="unlimited", speed=1.0, prices=prices)
    assert always.detail["instances"] == 1
    assert always.detail["surplus_usd_per_hour"] == pytest.approx(
        (10 * 580.01 / 3600 - 1.6) * 0.05, rel=1e-3
    )
    assert always.cost_usd == pytest.approx(
        (t3.hourly + always.detail["surplus_usd_per_hour"]) / 10
    )
    # started per job: boot, then 2 vCPUs (within the 1.6 baseline? no: 2 > 1.6) pay surplus
    assert per_job.detail["surplus_usd"] > 0
    assert per_job.time_ms == pytest.approx((45 + 290.005) * 1e3)
    # standard mode: no surplus, and the 2-wide job is throttled to 1.6 vCPUs after boot credit
    std = cloud.vm_side(job, t3, 10.0, mode="standard", speed=1.0, prices=prices)[1]
    assert std.detail["throttled"] and std.detail["surplus_usd"] == 0
    assert std.time_ms > per_job.time_ms
    m7i = prices.ec2.instances["m7i.xlarge"]
    flat = cloud.vm_side(job, m7i, 10.0, mode="unlimited", speed=1.0, prices=prices)[0]
    assert flat.detail["surplus_usd_per_hour"] == 0 and flat.detail["credit_mode"] is None


def test_the_speed_factor_divides_both_sides_times(run: Path) -> None:
    base = load_profile()
    fast = dataclasses.replace(base, speed_factors={"classify": 2.0, "train": 2.0})
    one = _verdicts(run, rates=(5000.0, 5000.0), instance="m7i.xlarge")["train"]
    two = _verdicts(run, profile=fast, rates=(5000.0, 5000.0), instance="m7i.xlarge")["train"]
    assert two["functions"]["time_to_result_ms"] == pytest.approx(
        one["functions"]["time_to_result_ms"] / 2, rel=0.02
    )
    assert two["speed_factor"] == 2.0 and one["speed_factor"] == 1.0
    assert "unknown" in one["speed_factor_source"]


def test_a_pinned_fanout_memory_and_instance_are_what_is_answered(run: Path) -> None:
    v = _verdicts(run, rates=(100.0, 100.0), fanout=20, memory_mb=1024, instance="t3.large")
    f = v["classify"]["functions"]
    assert (f["fanout"], f["memory_mb"]) == (20, 1024)
    assert "scaled from 2048 MB" in f["source"]
    assert v["classify"]["vm"]["instance"] == "t3.large"


def test_headline_terminal_and_dashboard_give_the_verdict_first(run: Path) -> None:
    build_report(run, plots=False, jobs_per_hour=(10.0, 10.0))
    head = json.loads((run / "headline.json").read_text())
    assert head["jobs_per_hour"] == [10.0, 10.0]
    assert head["verdict"]["classify"]["choice"] == "functions"
    assert head["sentences"][: len(head["answer"])] == head["answer"]
    assert head["answer"][0] == head["verdict"]["classify"]["sentence"]
    assert "emulation check on this machine" in head["answer"][-1]
    assert any(s.startswith("classify, emulation check on this machine: ") for s in head["more"])
    out = terminal_summary(run).splitlines()
    assert out[1] == f"  - {head['answer'][0]}"
    assert dashboard_verdict(run) == [
        head["verdict"][w]["sentence"] for w in ("classify", "dataproc", "train")
    ]


def test_at_most_five_sentences_come_before_the_first_table(run: Path) -> None:
    build_report(run, plots=False)
    page = (run / "report.html").read_text()
    top = page[page.index("<h2>The answer") : page.index("<table")]
    text = re.sub(r"<[^>]+>", " ", top)
    sentences = [s for s in re.split(r"(?<=[.])\s+(?=[A-Z]|[a-z]+ at )", text) if s.strip()]
    assert 1 <= len(sentences) <= 5, sentences
    assert "<details" in page[page.index("<table") :]


def test_dashboard_verdict_without_a_usable_headline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert dashboard_verdict(tmp_path) is None
    (tmp_path / "headline.json").write_text('{"sentences": ["old run"]}')
    assert dashboard_verdict(tmp_path) is None
    (tmp_path / "headline.json").write_text("{torn")
    with caplog.at_level(logging.WARNING):
        assert dashboard_verdict(tmp_path) is None
    assert "headline.json" in caplog.text


def test_project_answers_and_refuses_bad_input_with_exit_2(
    run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["project", str(run), "--jobs-per-hour", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] is True and result["settings"]["jobs_per_hour"] == [20.0, 20.0]
    assert {r["placement"] for r in result["vm_types"]} == {"always on", "started per job"}
    assert cli.main(["project", str(run), "--instance", "t3.xlarge", "--fanout", "5"]) == 0
    out = capsys.readouterr().out
    assert "Lambda 2048 MB x 5" in out and "t3.xlarge started per job" in out
    for argv, needle in (
        (["project", str(tmp_path)], "no records.jsonl"),
        (["project", str(run), "--instance", "x9.huge"], "not in the catalogue"),
        (["project", str(run), "--memory-mb", "64"], "--memory-mb must be"),
        (["project", str(run), "--jobs-per-hour", "9-1"], "runs backwards"),
        (["project", str(run), "--fanout", "0"], "--fanout must be"),
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and "Traceback" not in err


def test_a_vm_targets_job_cost_counts_credits() -> None:
    prices, profile = load_prices(), load_profile()
    hourly = prices.ec2.on_demand_hourly["t3.xlarge"]
    # 2 busy vCPUs for an hour on a t3.xlarge: 0.4 vCPU-hours above its 1.6 baseline
    cost, basis = decision.vm_job_cost(hourly, 3600.0, 2.0, prices, profile)
    assert cost == pytest.approx(0.1664 + 0.4 * 0.05)
    assert basis.endswith("+ CPU credits (unlimited)")
    # within the baseline: the hourly price alone
    assert decision.vm_job_cost(hourly, 3600.0, 1.0, prices, profile)[0] == pytest.approx(0.1664)
    standard = dataclasses.replace(profile, vm_credit_mode="standard")
    slow, _ = decision.vm_job_cost(hourly, 3600.0, 2.0, prices, standard)
    assert slow == pytest.approx(0.1664 * 2 / 1.6)  # throttled to 1.6 vCPUs: 1.25 hours


def test_a_run_with_one_side_says_what_is_missing(run: Path, tmp_path: Path) -> None:
    only_vm = tmp_path / "vm-only"
    only_vm.mkdir()
    lines = (run / "records.jsonl").read_text().splitlines(keepends=True)
    keep = [line for line in lines if json.loads(line)["target"] == "standalone"]
    (only_vm / "records.jsonl").write_text("".join(keep))
    batches = (run / "batches.jsonl").read_text().splitlines(keepends=True)
    (only_vm / "batches.jsonl").write_text(
        "".join(b for b in batches if json.loads(b)["target"] == "standalone")
    )
    (only_vm / "run.json").write_text((run / "run.json").read_text())
    v = _verdicts(only_vm, rates=(10.0, 10.0))["classify"]
    assert v["choice"] == "vm" and v["functions"] is None
    assert "only a VM to answer with (no function target in this run)" in v["sentence"]


def test_jobs_per_hour_on_bench_and_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["bench", "--jobs-per-hour", "1-100"]).jobs_per_hour == "1-100"
    for bad in ("0", "abc", "100-1", "1-2-3"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["bench", "--jobs-per-hour", bad])
        assert exc.value.code == 2
    assert "--jobs-per-hour" in capsys.readouterr().err
    assert cli.main(["report", str(run), "--no-plots", "--jobs-per-hour", "25"]) == 0
    head = json.loads((run / "headline.json").read_text())
    assert head["jobs_per_hour"] == [25.0, 25.0]
    assert head["verdict"]["classify"]["sentence"].startswith("classify at 25 jobs/h: ")
    assert capsys.readouterr().out.count("classify at 25 jobs/h: ") == 1
    # the child process shpc bench builds its report in takes the same option
    from serverless_hpc.cli_bench import build_report_child

    assert build_report_child(run, "2-20") is None
    assert json.loads((run / "headline.json").read_text())["jobs_per_hour"] == [2.0, 20.0]


def test_the_verdict_chart_is_labelled_a_model_and_inert(run: Path) -> None:
    import xml.etree.ElementTree as ET

    written = build_report(run, plots=True)
    svg = written["verdict_cost_by_rate_model.svg"].read_text()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "<script" not in svg and "MODEL: classify: cost per job" in svg
    assert "functions (best plan)" in svg and "VM (cheapest way)" in svg
    assert "verdict_cost_by_rate_model.svg" in (run / "report.html").read_text()


def _with_cloud_targets(run: Path, out: Path) -> Path:
    """``run`` plus real-looking ``lambda`` and ``ec2`` classify jobs (hand-made records, with
    the costs and instance type those targets record)."""
    out.mkdir()
    recs = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    batches = [json.loads(line) for line in (run / "batches.jsonl").read_text().splitlines()]
    five = [
        r
        for r in recs
        if r["target"] == "local-faas" and r["workload"] == "classify" and r["shards"] == 5
    ]
    extra = [
        {**r, "target": target, "client_ms": ms, "duration_ms": ms - 5, "cost_usd": cost,
         "t_recv": r["t_send"] + ms / 1e3}
        for target, ms, cost in (("lambda", 150.0, 5e-6), ("ec2", 120.0, None))
        for r in five
    ]  # fmt: skip
    for b in batches:
        if b["target"] == "local-faas" and b["workload"] == "classify" and b["shards"] == 5:
            batches = [*batches, {**b, "target": "lambda", "makespan_ms": 150.0}]
            batches = [*batches, {**b, "target": "ec2", "makespan_ms": 120.0}]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs + extra))
    (out / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches))
    meta = json.loads((run / "run.json").read_text())
    meta["targets"]["ec2"] = {"instance_type": "t3.xlarge"}
    (out / "run.json").write_text(json.dumps(meta))
    return out


def test_real_lambda_and_ec2_jobs_are_marked_measured(run: Path, tmp_path: Path) -> None:
    both = _with_cloud_targets(run, tmp_path / "cloud")
    data = load_run(both)
    rows = summarize(data.records, data.batches)
    prices, profile = load_prices(), load_profile()
    configs = decision.configurations(data, rows, prices, profile)
    plans = cloud.faas_plans(data, configs, profile, prices)["classify"]
    (real,) = [p for p in plans if p.basis == "measured"]
    assert (real.fanout, real.warm_ms) == (5, pytest.approx(150.0, abs=1))
    assert real.warm_usd == pytest.approx(5 * 5e-6)
    job = cloud.vm_jobs(data, configs, profile, prices)["classify"]
    assert (job.target, job.instance, job.basis) == ("ec2", "t3.xlarge", "measured")
    t3 = prices.ec2.instances["t3.xlarge"]
    always = cloud.vm_side(job, t3, 1.0, mode="unlimited", speed=3.0, prices=prices)[0]
    # measured on this very type, at a rate that leaves it idle: the time is the measurement
    assert always.time_basis == "measured" and always.cost_basis == "model"
    assert always.time_ms == pytest.approx(120.0, rel=0.01)
    other = cloud.vm_side(job, prices.ec2.instances["m7i.xlarge"], 1.0, mode="unlimited",
                          speed=3.0, prices=prices)[0]  # fmt: skip
    assert other.time_basis == "model"
