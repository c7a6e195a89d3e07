"""A monotonic (or wall) clock that moves only when told to: by the test, or by a sleep."""

from __future__ import annotations


class FakeClock:
    """Callable as a clock; :meth:`sleep` records the wait and moves the clock by it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
