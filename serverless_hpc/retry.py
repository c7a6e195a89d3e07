"""Bounded waiting: exponential backoff with full jitter inside a deadline.

Every remote wait in the project goes through :class:`Backoff`: OpenWhisk's 429 ("over the
rate or concurrency limit") and 202 ("the blocking wait ran out, poll the activation"), and
Lambda's throttling (``TooManyRequestsException`` and friends). Each means "try again
later", never "try again forever". The clock, sleep and random source are injectable for
tests.

This module imports nothing from the project (see docs/design.md, "The layers").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays ``base_s * 2**n`` capped at ``cap_s``, full jitter, until ``deadline_s`` passes.

    The deadline counts from construction. Full jitter (a uniform draw in ``[0, delay]``)
    spreads clients that were throttled together. Two ways to wait, for two kinds of call:

    * iterating (polling): sleeps before yielding each attempt number (the first attempt, 0,
      is not delayed); the last wait is shortened to end at the deadline, so one more cheap
      attempt happens exactly when time runs out rather than never;
    * :meth:`pause` (calls that need time of their own, such as an invocation): sleeps the
      whole delay, or not at all when the wait would end at or after the deadline, since an
      attempt started then could not finish in time.
    """

    deadline_s: float
    base_s: float = 0.1
    cap_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: A uniform draw in ``[0, 1)``.
    rng: Callable[[], float] = random.random
    _end: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.deadline_s < 0 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("need deadline_s >= 0 and 0 < base_s <= cap_s")
        self._end = self.clock() + self.deadline_s

    def delay(self, attempt: int) -> float:
        """The full-jitter wait after attempt ``attempt``: in ``[0, min(cap, base * 2**n)]``."""
        return self.rng() * min(self.cap_s, self.base_s * 2**attempt)

    def __iter__(self) -> Iterator[int]:
        attempt = 0
        yield attempt
        while True:
            delay = self.delay(attempt)
            remaining = self._end - self.clock()
            if remaining <= 0:
                return
            self.sleep(min(delay, remaining))
            attempt += 1
            yield attempt
            if self.clock() >= self._end:
                return

    def pause(self, attempt: int) -> float | None:
        """Sleep the whole wait after attempt ``attempt`` and return it.

        ``None``, without sleeping, when the wait would end at or after the deadline.
        """
        delay = self.delay(attempt)
        if self.clock() + delay >= self._end:
            return None
        self.sleep(delay)
        return delay
