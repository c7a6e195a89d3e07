"""The bounded backoff every OpenWhisk wait goes through."""

from __future__ import annotations

import random

import pytest

from serverless_hpc.openwhisk.retry import Backoff


class FakeClock:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _backoff(clock: FakeClock, deadline: float, **kw: float) -> Backoff:
    return Backoff(deadline, clock=clock, sleep=clock.sleep, rng=random.Random(7), **kw)


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
