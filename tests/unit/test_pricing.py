"""Cost formulas against hand-computed numbers, and the shipped price file's shape."""

from __future__ import annotations

import json
import math
from importlib import resources

import pytest

from serverless_hpc.pricing import (
    CostLedger,
    PriceError,
    Prices,
    break_even_invocations_per_hour,
    break_even_table,
    ec2_billed_seconds,
    ec2_cost,
    ec2_hourly,
    lambda_invocation_cost,
    s3_requests_cost,
)
from serverless_hpc.pricing_data import load_prices

RAW = {
    "region": "test-region-1",
    "currency": "USD",
    "as_of": "2000-01-01",
    "lambda": {
        "gb_second": {"x86_64": 0.00001, "arm64": 0.000008},
        "request": 0.0000002,
        "ephemeral_gb_second": 0.00000003,
        "free_ephemeral_mb": 512,
    },
    "s3": {"get_request": 0.0000004, "put_request": 0.000005},
    "ec2": {
        "billing_minimum_s": 60,
        "on_demand_hourly": {"t3.xlarge": 0.36},
        "ebs_gp3_gb_month": 0.073,
    },
}


@pytest.fixture
def prices() -> Prices:
    return Prices.from_dict(RAW)


def test_lambda_cost_is_billed_gb_seconds_plus_request(prices: Prices) -> None:
    # 1500 ms billed at 2048 MB on x86: 1.5 s * 2 GB * 0.00001 + 0.0000002
    cost = lambda_invocation_cost(
        billed_ms=1500, memory_mb=2048, architecture="x86_64", prices=prices
    )
    assert cost == pytest.approx(1.5 * 2 * 0.00001 + 0.0000002)


def test_arm64_is_priced_at_its_own_rate(prices: Prices) -> None:
    x86 = lambda_invocation_cost(
        billed_ms=1000, memory_mb=1024, architecture="x86_64", prices=prices
    )
    arm = lambda_invocation_cost(
        billed_ms=1000, memory_mb=1024, architecture="arm64", prices=prices
    )
    assert x86 - arm == pytest.approx(0.00001 - 0.000008)


def test_ephemeral_storage_above_free_tier_is_billed(prices: Prices) -> None:
    base = lambda_invocation_cost(
        billed_ms=1000, memory_mb=1024, architecture="x86_64", prices=prices
    )
    more = lambda_invocation_cost(
        billed_ms=1000, memory_mb=1024, architecture="x86_64", prices=prices, ephemeral_mb=1536
    )
    assert more - base == pytest.approx(1.0 * 1.0 * 0.00000003)


def test_unknown_architecture_is_an_error(prices: Prices) -> None:
    with pytest.raises(PriceError, match="sparc"):
        lambda_invocation_cost(billed_ms=1, memory_mb=128, architecture="sparc", prices=prices)


def test_s3_requests(prices: Prices) -> None:
    assert s3_requests_cost(gets=1000, puts=10, prices=prices) == pytest.approx(0.0004 + 0.00005)


def test_ec2_per_second_with_60s_minimum(prices: Prices) -> None:
    assert ec2_billed_seconds(12.2, prices) == 60
    assert ec2_billed_seconds(60.0, prices) == 60
    assert ec2_billed_seconds(61.01, prices) == 62  # whole seconds, rounded up
    assert ec2_cost(up_s=30, instance_type="t3.xlarge", prices=prices) == pytest.approx(
        60 / 3600 * 0.36
    )
    assert ec2_cost(up_s=3600, instance_type="t3.xlarge", prices=prices) == pytest.approx(0.36)


def test_ec2_root_volume_is_prorated_per_hour(prices: Prices) -> None:
    hourly = ec2_hourly("t3.xlarge", prices, root_volume_gb=30)
    assert hourly == pytest.approx(0.36 + 30 * 0.073 / 730)


def test_break_even_is_vm_hourly_over_cost_per_invocation(prices: Prices) -> None:
    per_inv = lambda_invocation_cost(
        billed_ms=200, memory_mb=2048, architecture="x86_64", prices=prices
    )
    rate = break_even_invocations_per_hour(
        cost_per_invocation=per_inv, instance_type="t3.xlarge", prices=prices
    )
    assert rate == pytest.approx(0.36 / per_inv)
    # at the break-even rate an hour of Lambda costs what an hour of the VM costs
    assert rate * per_inv == pytest.approx(
        ec2_cost(up_s=3600, instance_type="t3.xlarge", prices=prices)
    )
    assert math.isinf(
        break_even_invocations_per_hour(
            cost_per_invocation=0, instance_type="t3.xlarge", prices=prices
        )
    )


def test_ledger_aggregates_by_item() -> None:
    ledger = CostLedger()
    ledger.add("lambda GB-s", 1.5, "GB-s", 0.25)
    ledger.add("lambda GB-s", 0.5, "GB-s", 0.75)
    ledger.add("requests", 2, "request", 0.5)
    summary = ledger.summary()
    assert summary["items"]["lambda GB-s"] == {"quantity": 2.0, "unit": "GB-s", "cost_usd": 1.0}
    assert summary["total_usd"] == pytest.approx(1.5)
    assert ledger.total() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("path", "value"),
    [(("lambda", "request"), -1), (("ec2", "on_demand_hourly", "t3.xlarge"), "cheap")],
)
def test_malformed_prices_are_rejected(path: tuple[str, ...], value: object) -> None:
    raw = json.loads(json.dumps(RAW))
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PriceError):
        Prices.from_dict(raw)


def test_shipped_price_file_has_date_region_and_t3_xlarge() -> None:
    raw = json.loads(resources.files("serverless_hpc").joinpath("prices.json").read_text())
    assert raw["as_of"] and raw["region"]
    prices = load_prices()
    assert prices.ec2.on_demand_hourly["t3.xlarge"] > 0
    assert prices.ec2.billing_minimum_s == 60
    assert set(prices.lambda_.gb_second) == {"x86_64", "arm64"}


def test_pricing_module_does_no_io_and_imports_nothing_of_the_project() -> None:
    import ast
    from pathlib import Path

    import serverless_hpc.pricing as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert not any(str(m).startswith("serverless_hpc") for m in imported)
    assert not {"json", "os", "pathlib", "io", "importlib"} & {str(m) for m in imported}
    assert "open(" not in Path(mod.__file__).read_text()


def test_break_even_table_uses_warm_lambda_records(prices: Prices) -> None:
    records = [
        {"target": "lambda", "workload": "classify", "ok": True, "cold": True, "cost_usd": 9e-5},
        {"target": "lambda", "workload": "classify", "ok": True, "cold": False, "cost_usd": 1e-5},
        {"target": "lambda", "workload": "classify", "ok": True, "cold": False, "cost_usd": 3e-5},
        {"target": "lambda", "workload": "classify", "ok": False, "cold": False, "cost_usd": 1.0},
        {"target": "ec2", "workload": "classify", "ok": True, "cold": False, "cost_usd": 1.0},
        {"target": "lambda", "workload": "train", "ok": True, "cold": True, "cost_usd": 0.01},
    ]
    rows = {r["workload"]: r for r in break_even_table(records, prices=prices)}
    assert rows["classify"]["basis"] == "warm"
    assert rows["classify"]["median_cost_usd"] == pytest.approx(2e-5)
    assert rows["classify"]["break_even_per_hour"] == pytest.approx(0.36 / 2e-5)
    assert rows["train"]["basis"] == "all"
    assert rows["train"]["break_even_per_hour"] == pytest.approx(36.0)
