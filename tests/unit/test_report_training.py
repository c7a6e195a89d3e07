"""Trainings in the report: the cost curve rebuilt from the records (measured, or modelled
for the targets that do not bill), the headline's time and cost to 0.90 per target and worker
count, and the two SVG charts. Every run directory here is made by hand, with figures whose
answers are worked out in the comments."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import chain
from serverless_hpc.charts import ALERT
from serverless_hpc.pricing_data import load_prices
from serverless_hpc.report import build_report, load_run, summarize
from serverless_hpc.report.headline import headline
from serverless_hpc.report.html import inline_svg
from serverless_hpc.report.profile import load_profile
from serverless_hpc.report.training import (
    COST_CHART,
    TIME_CHART,
    charts,
    priced_legs,
    rebuild_curve,
    trainings,
)
from tests.unit.test_charts import assert_inert
from tests.unit.test_report_answers import rec as answers_rec

SVG = "{http://www.w3.org/2000/svg}"


def rec(**kw: Any) -> dict[str, Any]:
    """One invocation record of a training, as records.jsonl holds it."""
    defaults: dict[str, Any] = {
        "target": "local-faas",
        "workload": "train",
        "client_ms": 1000.0,
        "t_send": 100.0,
        "t_recv": 101.0,
        "memory_mb": 2048,
    }
    return answers_rec(**(defaults | kw))


def chain_records(
    target: str, spans: list[tuple[float, float]], costs: list[float | None] | None = None
) -> list[dict[str, Any]]:
    """A chain's legs over ``spans`` (send, reply) with their handler time as duration."""
    costs = costs or [None] * len(spans)
    return [
        rec(
            target=target,
            leg=i,
            t_send=s,
            t_recv=e,
            client_ms=(e - s) * 1e3,
            duration_ms=(e - s) * 1e3,
            cost_usd=c,
        )
        for i, ((s, e), c) in enumerate(zip(spans, costs, strict=True))
    ]


def round_records(
    target: str, workers: int, rounds: list[tuple[float, float, float]]
) -> list[dict[str, Any]]:
    """Data-parallel rounds: per (start, workers' end, combine end), the workers then the
    combine step, records as the driver writes them (``shards`` = the worker count)."""
    out = []
    for rnd, (start, mid, end) in enumerate(rounds):
        for i in range(workers):
            out.append(
                rec(
                    target=target,
                    shard=i,
                    shards=workers,
                    round=rnd,
                    role="worker",
                    leg=0,
                    t_send=start,
                    t_recv=mid,
                    duration_ms=(mid - start) * 1e3,
                )
            )
        out.append(
            rec(
                target=target,
                shard=workers,
                shards=workers,
                round=rnd,
                role="combine",
                leg=0,
                t_send=mid,
                t_recv=end,
                duration_ms=(end - mid) * 1e3,
            )
        )
    return out


def training_batch(
    records: list[dict[str, Any]],
    accuracies: list[float],
    elapsed: list[float],
    *,
    workers: int = 1,
) -> dict[str, Any]:
    """The batch line the driver writes for a training: its derived progress points."""
    r0 = records[0]
    t0 = min(r["t_send"] for r in records)
    return {
        "run_id": "r",
        "target": r0["target"],
        "workload": "train",
        "memory_mb": 2048,
        "shards": 1,
        "workers": workers,
        "repeat": r0["repeat"],
        "mode": "natural",
        "invocations": len(records),
        "failed": 0,
        "items": 0,
        "makespan_ms": (max(r["t_recv"] for r in records) - t0) * 1e3,
        "test_accuracy": accuracies[-1],
        "model_version": "v1",
        "legs": sum(1 for r in records if r.get("role") != "worker"),
        "progress": [
            {
                "epoch": i + 1,
                "test_accuracy": a,
                "train_loss": 0.5,
                "elapsed_s": e,
                "cost_usd": None,
            }
            for i, (a, e) in enumerate(zip(accuracies, elapsed, strict=True))
        ],
    }


def write_training_run(
    out: Path, trainings_: list[tuple[list[dict[str, Any]], dict[str, Any]]]
) -> Path:
    """A finished run directory holding the trainings' records and batch lines."""
    out.mkdir(parents=True, exist_ok=True)
    recs = [r for rs, _ in trainings_ for r in rs]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (out / "batches.jsonl").write_text("".join(json.dumps(b) + "\n" for _, b in trainings_))
    (out / "run.json").write_text(json.dumps({"run_id": out.name, "started": 1, "finished": 2}))
    return out


def lambda_price(seconds: float, memory_mb: int = 2048) -> float:
    """Lambda's x86_64 price of one warm invocation, from the packaged price list."""
    p = load_prices().lambda_
    return seconds * (memory_mb / 1024) * p.gb_second["x86_64"] + p.request


# A measured chain: legs 100-160 s ($0.06) and 160-200 s ($0.04); epochs end at 30, 60, 80 s.
MEASURED = (
    chain_records("lambda", [(100.0, 160.0), (160.0, 200.0)], [0.06, 0.04]),
    [0.85, 0.91, 0.92],
    [30.0, 60.0, 80.0],
)


def _trainings(tmp_path: Path, *runs: tuple[list[dict[str, Any]], dict[str, Any]]) -> Any:
    data = load_run(write_training_run(tmp_path / "run", list(runs)))
    return data, trainings(data, load_prices(), load_profile())


# -- the cost curve -------------------------------------------------------------------------


def test_measured_costs_are_apportioned_pro_rata_along_the_curve(tmp_path: Path) -> None:
    recs, acc, elapsed = MEASURED
    _, (t,) = _trainings(tmp_path, (recs, training_batch(recs, acc, elapsed)))
    # 30 s is half of leg 0 ($0.03); 60 s is leg 0 whole; 80 s adds half of leg 1 ($0.02).
    assert [p["elapsed_s"] for p in t.points] == pytest.approx([30.0, 60.0, 80.0])
    assert [p["cost_usd"] for p in t.points] == pytest.approx([0.03, 0.06, 0.08])
    assert t.cost_basis == "measured" and not t.cost_model
    assert t.reached["epoch"] == 2
    assert t.reached["elapsed_s"] == pytest.approx(60.0)
    assert t.reached["cost_usd"] == pytest.approx(0.06)


def test_a_function_target_without_bills_is_priced_as_lambda_and_called_a_model(
    tmp_path: Path,
) -> None:
    # Two 10 s legs at 2048 MB on local-faas; epochs end at 5, 10 and 20 s.
    recs = chain_records("local-faas", [(100.0, 110.0), (110.0, 120.0)])
    _, (t,) = _trainings(tmp_path, (recs, training_batch(recs, [0.80, 0.91, 0.93], [5, 10, 20])))
    leg = lambda_price(10.0)
    assert [p["cost_usd"] for p in t.points] == pytest.approx([leg / 2, leg, 2 * leg])
    assert t.cost_model and t.cost_basis == "model: Lambda prices x measured durations"
    assert t.reached == {
        "epoch": 2,
        "elapsed_s": pytest.approx(10.0),
        "cost_usd": pytest.approx(leg),
    }


def test_a_vm_target_bills_its_uptime_once_however_many_workers_run_on_it(
    tmp_path: Path,
) -> None:
    # Two rounds of 2 workers on standalone: 100-130 workers, 130-135 combine, then 135-165,
    # 165-170. The VM is up 70 s in all; the two workers share it.
    recs = round_records("standalone", 2, [(100.0, 130.0, 135.0), (135.0, 165.0, 170.0)])
    batch = training_batch(recs, [0.86, 0.905], [35.0, 70.0], workers=2)
    _, (t,) = _trainings(tmp_path, (recs, batch))
    hourly = load_prices().ec2.on_demand_hourly[load_profile().vm_instance_type]
    assert [p["cost_usd"] for p in t.points] == pytest.approx(
        [hourly * 35 / 3600, hourly * 70 / 3600]
    )
    assert t.workers == 2 and t.cost_model and "hourly price x elapsed time" in t.cost_basis
    assert t.reached["epoch"] == 2 and t.reached["cost_usd"] == pytest.approx(hourly * 70 / 3600)


def test_rebuild_curve_gives_back_the_functions_epoch_times() -> None:
    legs = [chain.Leg(1000.0, 1010.0, 1.0)]
    progress: list[dict[str, Any]] = [
        {"epoch": 1, "test_accuracy": 0.5, "elapsed_s": 2.5},
        {"epoch": 2},
    ]
    (p,) = rebuild_curve(progress, legs, 1000.0)  # a point without elapsed_s is dropped
    assert p["elapsed_s"] == pytest.approx(2.5) and p["cost_usd"] == pytest.approx(0.25)


def test_a_target_the_profile_does_not_know_has_no_cost() -> None:
    legs, basis = priced_legs([rec(target="mystery")], "unknown", load_prices(), load_profile())
    assert basis == "" and legs[0].cost_usd is None


def test_records_of_other_trainings_are_not_counted(tmp_path: Path) -> None:
    one = chain_records("lambda", [(100.0, 160.0)], [0.06])
    other = chain_records("lambda", [(100.0, 160.0)], [5.0])
    for r in other:
        r["repeat"] = 1
    batch = training_batch(one, [0.95], [60.0])
    b2 = training_batch(other, [0.5], [60.0])
    _, trains = _trainings(tmp_path, (one, batch), (other, b2))
    assert [t.repeat for t in trains] == [0, 1]
    assert trains[0].points[0]["cost_usd"] == pytest.approx(0.06)
    assert trains[0].label.endswith("repeat 0")  # several repeats: the label says which


def test_a_training_whose_records_are_missing_keeps_the_drivers_curve(tmp_path: Path) -> None:
    recs, acc, elapsed = MEASURED
    batch = training_batch(recs, acc, elapsed)
    batch["progress"][1]["cost_usd"] = 0.06
    batch["progress"][0]["cost_usd"] = 0.03
    batch["progress"][2]["cost_usd"] = 0.08
    data = load_run(write_training_run(tmp_path / "norecs", [([], batch)]))
    (t,) = trainings(data, load_prices(), load_profile())
    assert t.cost_basis == "measured" and t.reached["cost_usd"] == pytest.approx(0.06)


# -- the headline ---------------------------------------------------------------------------


def _head(tmp_path: Path, *runs: tuple[list[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    data = load_run(write_training_run(tmp_path / "h", list(runs)))
    return headline(data, summarize(data.records, data.batches))


def test_headline_gives_time_and_measured_cost_to_090(tmp_path: Path) -> None:
    recs, acc, elapsed = MEASURED
    h = _head(tmp_path, (recs, training_batch(recs, acc, elapsed)))
    assert (
        "train on lambda, 1 worker: final test accuracy 0.9200 after 3 epoch(s) in 100.00 s; "
        "reached 0.90 at epoch 2 after 60.00 s, costing $0.06 (measured) "
        "(training lambda/train/natural, 1 worker)." in h["sentences"]
    )
    (info,) = h["training"]
    assert info["row"] == "lambda/train/natural, 1 worker"
    assert info["reached_target"] is True and info["epochs_to_target"] == 2
    assert info["time_to_target_s"] == pytest.approx(60.0)
    assert info["cost_to_target_usd"] == pytest.approx(0.06)
    assert info["cost_basis"] == "measured" and info["cost_model"] is False


def test_headline_per_worker_count_with_a_modelled_cost_and_one_that_did_not_reach(
    tmp_path: Path,
) -> None:
    one = chain_records("local-faas", [(100.0, 110.0), (110.0, 120.0)])
    two = round_records("local-faas", 2, [(200.0, 204.0, 205.0), (205.0, 209.0, 210.0)])
    h = _head(
        tmp_path,
        (one, training_batch(one, [0.80, 0.91, 0.93], [5.0, 10.0, 20.0])),
        (two, training_batch(two, [0.70, 0.85], [5.0, 10.0], workers=2)),
    )
    reached, missed = (s for s in h["sentences"] if "final test accuracy" in s)
    assert reached == (
        "train on local-faas, 1 worker: final test accuracy 0.9300 after 3 epoch(s) in "
        f"20.00 s; reached 0.90 at epoch 2 after 10.00 s, costing ${lambda_price(10.0):.3g} "
        "(model: Lambda prices x measured durations) "
        "(training local-faas/train/natural, 1 worker)."
    )
    assert missed == (
        "train on local-faas, 2 workers: final test accuracy 0.8500 after 2 epoch(s) in "
        "10.00 s; did not reach 0.90 (training local-faas/train/natural, 2 workers)."
    )
    first, second = h["training"]
    assert (first["workers"], second["workers"]) == (1, 2)
    assert first["cost_model"] is True and first["cost_basis"].startswith("model")
    assert second["reached_target"] is False
    assert second["time_to_target_s"] is None and second["cost_to_target_usd"] is None


def test_headline_without_per_epoch_accuracy_says_so(tmp_path: Path) -> None:
    recs = chain_records("lambda", [(100.0, 160.0)], [0.06])
    batch = training_batch(recs, [0.93], [60.0])
    del batch["progress"]
    (s,) = (x for x in _head(tmp_path, (recs, batch))["sentences"] if "final test" in x)
    assert s.endswith(
        "no per-epoch test accuracy recorded, so no time to 0.90 "
        "(training lambda/train/natural, 1 worker)."
    )
    assert "final test accuracy 0.9300" in s


# -- the charts -----------------------------------------------------------------------------


def _series(svg: bytes) -> list[str]:
    """The legend titles of a pygal chart, parsed as XML (fails on invalid SVG)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    legends = [g for g in root.iter(f"{SVG}g") if "legend" in (g.get("class") or "").split()]
    return ["".join(t.itertext()).strip() for g in legends for t in g.iter(f"{SVG}text")]


def test_charts_are_scriptless_svg_with_one_series_per_target_and_worker_count(
    tmp_path: Path,
) -> None:
    one = chain_records("local-faas", [(100.0, 110.0), (110.0, 120.0)])
    two = round_records("local-faas", 2, [(200.0, 204.0, 205.0), (205.0, 209.0, 210.0)])
    vm = chain_records("standalone", [(300.0, 320.0)])
    vm_batch = training_batch(vm, [0.88, 0.92], [10.0, 20.0])
    for x in [*vm, vm_batch]:  # another size on another target: not a variant to name
        x["memory_mb"] = 24105
    _, trains = _trainings(
        tmp_path,
        (one, training_batch(one, [0.80, 0.91, 0.93], [5.0, 10.0, 20.0])),
        (two, training_batch(two, [0.70, 0.85], [5.0, 10.0], workers=2)),
        (vm, vm_batch),
    )
    out = charts(trains)
    assert set(out) == {TIME_CHART, COST_CHART}
    for svg in out.values():  # as inert as every other chart of the report
        assert_inert(svg.decode("utf-8"))
        assert not svg.startswith(b"<?xml")
    assert _series(out[TIME_CHART]) == [
        "local-faas, 1 worker",
        "local-faas, 2 workers",
        "standalone, 1 worker",
    ]
    assert _series(out[COST_CHART]) == [
        "local-faas, 1 worker (model)",
        "local-faas, 2 workers (model)",
        "standalone, 1 worker (model)",
    ]
    title = ET.fromstring(out[COST_CHART]).find(f".//{SVG}text[@class='title']")
    assert title is not None and "model" in "".join(title.itertext())


def test_a_measured_cost_chart_does_not_say_model(tmp_path: Path) -> None:
    recs, acc, elapsed = MEASURED
    _, trains = _trainings(tmp_path, (recs, training_batch(recs, acc, elapsed)))
    svg = charts(trains)[COST_CHART]
    assert _series(svg) == ["lambda, 1 worker"] and b"model" not in svg


def test_090_is_the_one_marked_guide_line_solid_in_the_alert_colour(tmp_path: Path) -> None:
    recs, acc, elapsed = MEASURED
    _, trains = _trainings(tmp_path, (recs, training_batch(recs, acc, elapsed)))
    for name, svg in charts(trains).items():
        root = ET.fromstring(svg)
        # THEN one major guide line, at the 0.90 tick (pygal marks major ticks' labels)
        majors = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "major"]
        lines = [p for p in root.iter(f"{SVG}path") if p.get("class") == "major guide line"]
        assert majors == ["0.90"] and len(lines) == 1, name
        # AND major guides are drawn solid, in the colour that says "attention"
        style = "".join(s.text or "" for s in root.iter(f"{SVG}style"))
        assert f".major.guide.line{{stroke-dasharray:none;stroke:{ALERT}}}" in style, name


def test_the_report_shows_the_training_table_and_inlines_the_charts(tmp_path: Path) -> None:
    recs = chain_records("local-faas", [(100.0, 110.0), (110.0, 120.0)])
    run = write_training_run(
        tmp_path / "rep", [(recs, training_batch(recs, [0.80, 0.91, 0.93], [5, 10, 20]))]
    )
    written = build_report(run)
    assert {TIME_CHART, COST_CHART} <= set(written)
    page = (run / "report.html").read_text()
    for name in (TIME_CHART, COST_CHART):  # each chart inlined as the file holds it
        assert inline_svg((run / name).read_bytes()) in page
    assert "Training: time and cost to test accuracy 0.90" in page
    assert "model: Lambda prices x measured durations" in page and " (model)</td>" in page
    head = json.loads((run / "headline.json").read_text())
    assert head["training"][0]["cost_model"] is True
