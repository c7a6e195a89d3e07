"""The memory picks on hand-made records: the measures at each size, the three picks, the
confidence rule, and the labels of a projected cost."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from serverless_hpc import picks
from serverless_hpc.pricing import Prices, lambda_invocation_cost

PRICES = Prices.from_dict(
    {
        "region": "us-east-1",
        "currency": "USD",
        "as_of": "2025-06-01",
        "lambda": {"gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334}, "request": 2e-7},
        "s3": {"get_request": 4e-7, "put_request": 5e-6},
        "ec2": {"on_demand_hourly": {"t3.xlarge": 0.1664}},
    }
)


def rec(memory: int, ms: float, **kw: Any) -> dict[str, Any]:
    base = {
        "target": "local-faas",
        "workload": "classify",
        "shards": 2,
        "mode": "natural",
        "memory_mb": memory,
        "duration_ms": ms,
        "cold": False,
        "ok": True,
        "error": None,
        "cost_usd": None,
        "oversubscribed": False,
    }
    return {**base, **kw}


def sweep(times: dict[int, list[float]]) -> list[dict[str, Any]]:
    return [rec(m, t) for m, ts in times.items() for t in ts]


# A CPU-bound function: time falls in proportion to memory up to 1769 MB (one vCPU), then
# only a little (this function cannot use the second vCPU well).
CPU_BOUND = {
    512: [3400.0, 3450, 3500, 3550, 3600],
    1024: [1700.0, 1720, 1760, 1780, 1800],
    1769: [1000.0, 1010, 1020, 1030, 1040],
    3538: [900.0, 905, 910, 915, 920],
}


def test_each_size_has_its_median_and_model_cost() -> None:
    table = picks.size_table(sweep(CPU_BOUND), PRICES)
    assert [s.memory_mb for s in table] == [512, 1024, 1769, 3538]
    s = table[0]
    assert s.median_ms == 3500.0 and s.n == 5
    expected = lambda_invocation_cost(
        billed_ms=3500, memory_mb=512, architecture="x86_64", prices=PRICES
    )
    assert s.cost_per_invocation_usd == pytest.approx(expected)
    assert s.cost_per_job_usd == pytest.approx(2 * expected)
    assert s.cost_basis == picks.MODEL


def test_billed_costs_are_used_where_the_platform_bills() -> None:
    records = [rec(m, 100.0, target="lambda", cost_usd=m * 1e-9) for m in (512, 1024)]
    table = picks.size_table(records, PRICES)
    assert [s.cost_basis for s in table] == [picks.BILLED] * 2
    assert table[0].cost_per_invocation_usd == pytest.approx(512e-9)


def test_one_size_and_non_function_targets_get_no_pick_and_no_model_cost() -> None:
    records = [rec(24_000, 5.0, target="standalone"), rec(512, 5.0, target="standalone")]
    records.append(rec(1024, 5.0))  # local-faas at one size only
    table = picks.size_table(records, PRICES)
    assert [(s.target, s.memory_mb) for s in table] == [("standalone", 512), ("standalone", 24_000)]
    assert all(s.cost_per_invocation_usd is None for s in table)  # not a function
    assert [p.kind for p in picks.picks(table)] == ["fastest"]


def test_three_picks_by_their_rules() -> None:
    found = {p.kind: p for p in picks.picks(picks.size_table(sweep(CPU_BOUND), PRICES))}
    # cost ~ time x memory: 512: 3500x512 = 1.792M MB-ms, 1024: 1.802M, 1769: 1.804M,
    # 3538: 3.220M; the request fee is the same at every size
    costs = {m: statistics_cost(m, ts) for m, ts in CPU_BOUND.items()}
    assert min(costs, key=costs.__getitem__) == 512
    assert found["cheapest"].memory_mb == 512
    assert found["fastest"].memory_mb == 3538
    # balanced: (cost / cheapest) x (time / fastest) is lowest at 1769
    assert found["balanced"].memory_mb == 1769
    assert found["fastest"].confidence == "high"  # IQRs 900-920 and 1000-1040 apart


def statistics_cost(memory: int, times: list[float]) -> float:
    ms = sorted(times)[len(times) // 2]
    return lambda_invocation_cost(
        billed_ms=math.ceil(ms), memory_mb=memory, architecture="x86_64", prices=PRICES
    )


def test_equal_costs_pick_the_faster() -> None:
    # 512 MB for 200 ms costs what 1024 MB for 100 ms does
    table = picks.size_table(sweep({512: [200.0] * 3, 1024: [100.0] * 3}), PRICES)
    found = {p.kind: p.memory_mb for p in picks.picks(table)}
    assert found == {"cheapest": 1024, "fastest": 1024, "balanced": 1024}


def test_a_size_that_ran_out_of_memory_is_listed_but_never_picked() -> None:
    records = sweep({512: [100.0, 100, 100], 1024: [150.0, 150, 150]})
    records.append(rec(512, 20.0, ok=False, error="OutOfMemory: killed at 512 MB"))
    table = picks.size_table(records, PRICES)
    assert table[0].out_of_memory == 1 and not table[0].candidate
    assert {p.memory_mb for p in picks.picks(table)} == {1024}
    assert picks.markdown(table, picks.picks(table)).count("OutOfMemory (1)") == 1
    assert all(p.confidence == "n/a (one size)" for p in picks.picks(table))


def test_confidence_rule() -> None:
    assert picks.confidence([1, 2, 3, 4, 5], [10, 11, 12, 13, 14]) == "high"
    assert picks.confidence([1, 2, 3, 9, 12], [5, 8, 12, 13, 14]) == "medium"
    assert picks.confidence([1, 5, 10, 12, 14], [2, 6, 10, 11, 13]) == "low"
    assert picks.confidence([1, 2], [10, 11]) == "low"  # too few to say
    assert picks.confidence([1, 2, 3], None) == "n/a (one size)"


def test_cold_only_sizes_use_cold_invocations_and_other_modes_are_ignored() -> None:
    records = [rec(512, 800.0, cold=True), rec(512, 50.0, mode="cold"), rec(1024, 9.0)]
    s = picks.size_table(records, PRICES)[0]
    assert s.median_ms == 800.0 and s.n == 1


def test_without_prices_only_the_fastest_is_picked() -> None:
    found = picks.picks(picks.size_table(sweep(CPU_BOUND)))
    assert [p.kind for p in found] == ["fastest"]


def test_markdown_labels_the_model_and_states_the_rules() -> None:
    table = picks.size_table(sweep(CPU_BOUND), PRICES)
    text = picks.markdown(table, picks.picks(table))
    assert "lambda-equivalent (model)" in text and "a projection, not a bill" in text
    assert picks.RULES in text
    assert "- local-faas classify x2: cheapest" in text
    csv_text = picks.to_csv(picks.rows(table, picks.picks(table)))
    header, *lines = csv_text.splitlines()
    assert header.split(",") == list(picks.COLUMNS)
    assert len(lines) == 4 and any("balanced" in line for line in lines)


def test_the_plot_is_an_svg_with_the_picks_and_one_size_has_none() -> None:
    table = picks.size_table(sweep(CPU_BOUND), PRICES)
    svg = picks.plot_memory(table, picks.picks(table))
    assert svg is not None
    root = ET.fromstring(svg)
    texts = {t.strip() for t in root.itertext() if t.strip()}
    # one panel: time on the left axis, the modelled cost on the right, each size labelled
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and "local-faas classify x2" in texts
    assert "USD per job (Lambda-equivalent model) (right axis)" in texts
    assert {"512", "1024", "1769", "3538"} <= texts
    labels = picks.pick_labels(picks.picks(table))
    assert set(labels.values()) <= texts and b"<script" not in svg
    one = picks.size_table(sweep({512: [1.0], 1024: [2.0]}), PRICES)[:1]
    assert picks.plot_memory(one, picks.picks(one)) is None


def test_importing_picks_loads_no_pygal() -> None:
    code = "import sys, serverless_hpc.picks; print('pygal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
