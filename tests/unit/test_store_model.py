"""The coupled-work model: a round's store time on Lambda with S3, and the crossover fan-out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serverless_hpc.report.profile import PlatformProfile, ProfileError, StoreProfile, load_profile
from serverless_hpc.report.store_model import Part, crossover, project, scalings, store_time

#: Round figures, so every case below can be worked out by hand: 100 MB/s is 1e5 bytes a ms.
STORE = StoreProfile(
    as_of="test",
    get_first_byte_ms=20.0,
    put_ms=40.0,
    function_bandwidth_mb_s=100.0,
    get_per_prefix_per_s=1000.0,
    put_per_prefix_per_s=500.0,
    sources={},
)


def _part(functions: int, reads: float, writes: float, read_b: float, written_b: float, **kw):
    fields = {"round": 0, "role": "worker", "compute_ms": 0.0} | kw
    return Part(
        functions=functions,
        reads=reads,
        writes=writes,
        bytes_read=read_b,
        bytes_written=written_b,
        **fields,
    )


def test_small_objects_are_bound_by_the_per_request_latency() -> None:
    # GIVEN 4 functions, each reading 2 objects and writing 1, of 100 kB each (1 ms of bandwidth)
    t = store_time(_part(4, reads=8, writes=4, read_b=8e5, written_b=4e5), STORE)
    # THEN each function waits 2 x 20 ms to read and 1 x 40 ms to write; the prefix keeps up
    # (8 GETs against 1000/s is 8 ms; 4 PUTs against 500/s is 8 ms)
    assert (t.read_ms, t.write_ms, t.throttle_ms) == pytest.approx((40.0, 40.0, 0.0))
    assert t.total_ms == pytest.approx(80.0) and t.bound == "latency"


def test_large_objects_are_bound_by_a_functions_bandwidth() -> None:
    # GIVEN 2 functions, each reading one 10 MB object and writing one of 20 MB
    t = store_time(_part(2, reads=2, writes=2, read_b=2e7, written_b=4e7), STORE)
    # THEN 10 MB at 100 MB/s is 100 ms (above the 20 ms latency), 20 MB is 200 ms (above 40)
    assert (t.read_ms, t.write_ms, t.throttle_ms) == pytest.approx((100.0, 200.0, 0.0))
    assert t.bound == "bandwidth"


def test_a_round_above_the_prefix_rates_is_throttled() -> None:
    # GIVEN 100 functions each making 20 GETs and 10 PUTs of tiny objects
    t = store_time(_part(100, reads=2000, writes=1000, read_b=0, written_b=0), STORE)
    # THEN alone they would take 20 x 20 = 400 ms and 10 x 40 = 400 ms, but the prefix serves
    # 2000 GETs at 1000/s in 2 s and 1000 PUTs at 500/s in 2 s: 3.2 s of throttling
    assert (t.read_ms, t.write_ms) == pytest.approx((2000.0, 2000.0))
    assert t.throttle_ms == pytest.approx(3200.0) and t.bound == "prefix rate"


def test_the_crossover_is_where_store_time_reaches_the_shrinking_compute() -> None:
    # GIVEN a job of one round measured at fan-out 1: 1 s of compute, one GET and one PUT
    measured = {1: [_part(1, reads=1, writes=1, read_b=0, written_b=0, compute_ms=1000.0)]}
    parts = scalings(measured)
    # THEN each function keeps its one GET and one PUT at every fan-out: 20 + 40 = 60 ms,
    # while its compute is 1000 / f ms: 62.5 ms at 16, 58.8 ms at 17
    at16, at17 = project(parts, 16, STORE), project(parts, 17, STORE)
    assert (at16.compute_ms, at16.store_ms) == pytest.approx((62.5, 60.0))
    assert at17.compute_ms == pytest.approx(1000 / 17) and at17.store_ms == pytest.approx(60.0)
    assert crossover(parts, STORE) == 17
    # AND a cloud vCPU twice as fast halves the compute: 500 / f <= 60 from f = 9
    assert crossover(parts, STORE, speed=2.0) == 9
    # AND a job whose store time never catches up says so (None), within the limit searched
    assert crossover(parts, STORE, limit=16) is None


def test_traffic_follows_the_measured_fan_outs() -> None:
    # GIVEN a shuffle measured at 2 and 4 mappers: the objects grow as the square of the fan-out
    measured = {
        2: [_part(2, reads=4, writes=4, read_b=1e6, written_b=1e6, compute_ms=800.0)],
        4: [_part(4, reads=16, writes=16, read_b=1e6, written_b=1e6, compute_ms=600.0)],
    }
    (s,) = scalings(measured)
    at8 = s.at(8)
    # THEN at 8 the model has 64 GETs and PUTs, the same bytes, 8 functions; the compute is
    # the largest measured fan-out's, spread over them
    assert (at8.reads, at8.writes, at8.functions) == pytest.approx((64.0, 64.0, 8))
    assert (at8.bytes_read, at8.bytes_written) == pytest.approx((1e6, 1e6))
    assert project([s], 8, STORE).compute_ms == pytest.approx(600.0 / 8)


def test_one_function_is_off_the_curve_when_larger_fan_outs_were_measured() -> None:
    # GIVEN a stencil-like round at 1 tile (no neighbours: 1 GET) and at 4 (4 GETs each)
    measured = {
        1: [_part(1, reads=1, writes=1, read_b=1e6, written_b=1e6)],
        4: [_part(4, reads=16, writes=16, read_b=1e6, written_b=1e6)],
    }
    (s,) = scalings(measured)
    # THEN fan-out 1 does not make the requests grow as the square: at 16 tiles each
    # function still makes the 4 requests it made at 4
    assert (s.at(16).reads, s.at(16).writes) == pytest.approx((64.0, 64.0))


def test_a_combine_step_is_one_function_whose_reads_grow_with_the_fan_out() -> None:
    # GIVEN a round's workers and its combine step, measured at 4 tiles
    workers = _part(4, reads=4, writes=4, read_b=4e5, written_b=4e5, compute_ms=400.0)
    combine = _part(1, reads=4, writes=0, read_b=4e5, written_b=0, compute_ms=10.0, role="combine")
    parts = scalings({4: [workers, combine]})
    # THEN at 8 tiles the combine step is still one function, reading 8 objects one after
    # another (8 x 20 ms) after the workers' shares; its compute (the job's checks) is left
    # out of the comparison, the workers' is spread over the 8
    p = project(parts, 8, STORE)
    assert p.rounds == 1
    assert p.compute_ms == pytest.approx(400.0 / 8)
    assert p.store_ms == pytest.approx((20.0 + 40.0) + 8 * 20.0)


def test_the_shipped_profile_has_sourced_store_figures() -> None:
    store = load_profile().store
    assert store is not None
    assert (store.get_per_prefix_per_s, store.put_per_prefix_per_s) == (5500.0, 3500.0)
    figures = (
        "get_first_byte_ms",
        "put_ms",
        "function_bandwidth_mb_s",
        "get_per_prefix_per_s",
        "put_per_prefix_per_s",
    )
    assert set(store.sources) == set(figures) and all(store.sources.values())


def test_a_store_figure_that_is_not_positive_is_refused() -> None:
    raw = json.loads(
        (Path(__file__).parents[2] / "serverless_hpc" / "platform_profile.json").read_text()
    )
    raw["store"]["function_bandwidth_mb_s"] = 0
    with pytest.raises(ProfileError, match="store figure"):
        PlatformProfile.from_dict(raw)
    del raw["store"]["put_ms"]
    with pytest.raises(ProfileError, match="put_ms"):
        PlatformProfile.from_dict(raw)
