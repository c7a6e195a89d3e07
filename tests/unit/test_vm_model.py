"""The VM side's price model on hand-made cases: the instance catalogue, burstable credits
(unlimited surplus, standard throttling) and an always-on instance at a steady demand."""

from __future__ import annotations

import pytest

from serverless_hpc.pricing import (
    Burst,
    InstanceType,
    PriceError,
    Prices,
    burstable_run,
    steady_load,
)
from serverless_hpc.pricing_data import load_prices

T3_XLARGE = InstanceType(
    name="t3.xlarge",
    vcpus=4,
    memory_gib=16,
    hourly=0.1664,
    burst=Burst(baseline_per_vcpu=0.4, credits_per_hour=96, surplus_vcpu_hour=0.05),
)
M7I_XLARGE = InstanceType(name="m7i.xlarge", vcpus=4, memory_gib=16, hourly=0.2016)
HOUR = 3600.0


def test_full_use_of_four_vcpus_for_an_hour_pays_the_surplus_above_the_baseline() -> None:
    run = burstable_run(T3_XLARGE, vcpu_seconds=4 * HOUR, parallelism=4, mode="unlimited")
    assert run.wall_s == pytest.approx(HOUR)
    assert run.surplus_vcpu_hours == pytest.approx(4 * 0.6)
    cost = T3_XLARGE.hourly * run.wall_s / HOUR + run.surplus_usd
    assert cost == pytest.approx(0.1664 + 4 * 0.6 * 0.05)
    # the same as an always-on instance at that demand
    load = steady_load(T3_XLARGE, demand_vcpus=4.0)
    assert load.usd_per_hour == pytest.approx(0.1664 + 0.12)
    assert load.slowdown == 1.0


def test_thirty_percent_for_an_hour_costs_the_hourly_price() -> None:
    busy = 0.3 * 4 * HOUR  # 30% of 4 vCPUs over the hour, below the 40% baseline
    run = burstable_run(
        T3_XLARGE, vcpu_seconds=busy, parallelism=4, idle_s=HOUR - busy / 4, mode="unlimited"
    )
    assert run.surplus_vcpu_hours == 0.0
    assert run.wall_s + (HOUR - busy / 4) == pytest.approx(HOUR)
    load = steady_load(T3_XLARGE, demand_vcpus=0.3 * 4)
    assert load.usd_per_hour == pytest.approx(0.1664)
    assert load.keeps_up


def test_standard_mode_throttles_to_the_baseline_and_charges_no_surplus() -> None:
    run = burstable_run(T3_XLARGE, vcpu_seconds=4 * HOUR, parallelism=4, mode="standard")
    assert run.throttled
    assert run.surplus_usd == 0.0
    assert run.wall_s == pytest.approx(HOUR / 0.4)  # 1.6 vCPUs' worth: 2.5 hours
    # work no wider than the baseline is not throttled
    narrow = burstable_run(T3_XLARGE, vcpu_seconds=HOUR, parallelism=1, mode="standard")
    assert not narrow.throttled and narrow.wall_s == pytest.approx(HOUR)
    # credits banked while idle are spent at full width first
    banked = burstable_run(
        T3_XLARGE, vcpu_seconds=4 * HOUR, parallelism=4, idle_s=HOUR, mode="standard"
    )
    assert HOUR < banked.wall_s < HOUR / 0.4
    # steady demand above the baseline: throttled, cannot keep up
    load = steady_load(T3_XLARGE, demand_vcpus=2.0, mode="standard")
    assert load.capacity_vcpus == pytest.approx(1.6)
    assert not load.keeps_up
    assert load.slowdown == pytest.approx(2.5)
    assert load.usd_per_hour == pytest.approx(0.1664)


def test_a_non_burstable_type_has_no_credits_and_work_wider_than_it_is_capped() -> None:
    run = burstable_run(M7I_XLARGE, vcpu_seconds=8 * HOUR, parallelism=8)
    assert run.wall_s == pytest.approx(2 * HOUR)  # only 4 vCPUs
    assert run.surplus_usd == 0.0
    assert steady_load(M7I_XLARGE, demand_vcpus=3.9).usd_per_hour == pytest.approx(0.2016)
    assert not steady_load(M7I_XLARGE, demand_vcpus=4.5).keeps_up


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vcpu_seconds": -1, "parallelism": 1},
        {"vcpu_seconds": 1, "parallelism": 0},
        {"vcpu_seconds": 1, "parallelism": 1, "mode": "turbo"},
    ],
)
def test_bad_arguments_are_price_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(PriceError):
        burstable_run(T3_XLARGE, **kwargs)  # type: ignore[arg-type]


def test_the_shipped_catalogue_is_consistent() -> None:
    prices = load_prices()
    cat = prices.ec2.instances
    assert {"t3.large", "t3.xlarge", "t3.2xlarge", "m7i.xlarge", "c7i.xlarge"} <= set(cat)
    for name, it in cat.items():
        assert prices.ec2.on_demand_hourly[name] == it.hourly
        if it.burst is not None:
            # one credit is one vCPU-minute: credits per hour = vcpus * baseline * 60
            assert it.burst.credits_per_hour == pytest.approx(
                it.vcpus * it.burst.baseline_per_vcpu * 60
            )
    assert cat["t3.xlarge"].burst is not None
    assert cat["m7i.xlarge"].burst is None
    assert prices.ec2.billing_minimum_s == 60
    assert prices.ec2.boot_to_ready_s > 0


def test_a_burstable_type_needs_the_surplus_price() -> None:
    raw = {
        "region": "r",
        "currency": "USD",
        "as_of": "2000-01-01",
        "lambda": {"gb_second": {"x86_64": 1e-5, "arm64": 1e-5}, "request": 2e-7},
        "s3": {"get_request": 0, "put_request": 0},
        "ec2": {
            "instances": {
                "t3.large": {
                    "vcpus": 2,
                    "memory_gib": 8,
                    "hourly": 0.08,
                    "baseline_per_vcpu": 0.3,
                    "credits_per_hour": 36,
                }
            }
        },
    }
    with pytest.raises(PriceError, match="unlimited_surplus_vcpu_hour"):
        Prices.from_dict(raw)
    raw["ec2"]["unlimited_surplus_vcpu_hour"] = 0.05  # type: ignore[index]
    assert Prices.from_dict(raw).ec2.instances["t3.large"].burst is not None
