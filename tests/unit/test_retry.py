"""The bounded backoff every remote wait goes through (OpenWhisk polling, Lambda throttling)."""

from __future__ import annotations

import random

import pytest

from serverless_hpc.retry import Backoff
from tests.doubles.clock import FakeClock


def _backoff(clock: FakeClock, deadline: float, **kw: float) -> Backoff:
    return Backoff(deadline, clock=clock, sleep=clock.sleep, rng=random.Random(7).random, **kw)


def test_first_attempt_is_immediate() -> None:
    # GIVEN a backoff WHEN the first attempt is taken THEN nothing has slept
    clock = FakeClock()
    it = iter(_backoff(clock, 10.0))
    assert next(it) == 0
    assert clock.sleeps == []


def test_attempts_stop_at_the_deadline() -> None:
    # GIVEN a 10 s deadline WHEN iterating to the end
    clock = FakeClock()
    attempts = list(_backoff(clock, 10.0, base_s=0.5, cap_s=2.0))
    # THEN the loop ended, the total sleep never passed the deadline, and it retried
    assert len(attempts) > 3
    assert clock.now <= 10.0 + 1e-9
    assert attempts == list(range(len(attempts)))


def test_delays_are_jittered_below_the_exponential_ceiling() -> None:
    # GIVEN base 0.1 s and cap 1 s WHEN iterating
    clock = FakeClock()
    list(_backoff(clock, 30.0, base_s=0.1, cap_s=1.0))
    # THEN every sleep is within [0, min(cap, base * 2**n)]
    for n, delay in enumerate(clock.sleeps[:-1]):
        assert 0.0 <= delay <= min(1.0, 0.1 * 2**n) + 1e-12
    assert len(set(clock.sleeps)) > 1  # jitter: not a fixed schedule


def test_zero_deadline_allows_exactly_one_attempt() -> None:
    # GIVEN no time at all WHEN iterating THEN exactly one attempt happens
    clock = FakeClock()
    assert list(_backoff(clock, 0.0)) == [0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"deadline_s": -1.0},
        {"deadline_s": 1.0, "base_s": 0.0},
        {"deadline_s": 1.0, "base_s": 2.0, "cap_s": 1.0},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    # GIVEN nonsensical settings WHEN constructing THEN ValueError
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_delay_is_capped_full_jitter() -> None:
    # GIVEN base 0.25 s and cap 8 s WHEN the rng is pinned to either end of its range
    top = Backoff(60.0, base_s=0.25, cap_s=8.0, rng=lambda: 1.0)
    bottom = Backoff(60.0, base_s=0.25, cap_s=8.0, rng=lambda: 0.0)
    # THEN the ceiling doubles per attempt up to the cap, and the floor is zero
    assert [top.delay(n) for n in (0, 1, 2, 20)] == [0.25, 0.5, 1.0, 8.0]
    assert bottom.delay(3) == 0.0


def test_pause_sleeps_the_whole_delay_while_it_fits() -> None:
    # GIVEN a 1 s deadline and the rng pinned to the top of the jitter range
    clock = FakeClock()
    backoff = Backoff(1.0, base_s=0.25, cap_s=8.0, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
    # WHEN pausing after each failed attempt
    waits = [backoff.pause(n) for n in range(3)]
    # THEN the first two waits are slept whole; the third (1 s) would end past the deadline,
    # so it is not slept at all and the caller is told to give up
    assert waits == [0.25, 0.5, None]
    assert clock.sleeps == [0.25, 0.5]


def test_pause_gives_up_on_a_wait_ending_exactly_at_the_deadline() -> None:
    # GIVEN a deadline the next wait would reach exactly WHEN pausing THEN no sleep happens
    clock = FakeClock()
    backoff = Backoff(0.25, base_s=0.25, cap_s=8.0, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
    assert backoff.pause(0) is None
    assert clock.sleeps == []
