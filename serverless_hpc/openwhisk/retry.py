"""Bounded waiting: exponential backoff with full jitter inside a deadline.

The controller answers 429 when a namespace is over its rate or concurrency limit, and a
202 when a blocking invocation outlived its wait; both mean "try again later", never "try
again forever". :class:`Backoff` yields the delays and stops at the deadline, so a caller's
loop is always bounded. The clock, sleep and random source are injectable for tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays ``base_s * 2**n`` capped at ``cap_s``, full jitter, until ``deadline_s`` passes.

    Iterating sleeps before yielding the attempt number (the first attempt, 0, is not
    delayed) and stops when the next sleep would end after the deadline. Full jitter (a
    uniform draw in ``[0, delay]``) spreads clients that were throttled together.
    """

    deadline_s: float
    base_s: float = 0.1
    cap_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.deadline_s < 0 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("need deadline_s >= 0 and 0 < base_s <= cap_s")

    def __iter__(self) -> Iterator[int]:
        end = self.clock() + self.deadline_s
        attempt = 0
        yield attempt
        while True:
            ceiling = min(self.cap_s, self.base_s * 2**attempt)
            delay = self.rng.uniform(0.0, ceiling)
            remaining = end - self.clock()
            if remaining <= 0:
                return
            # The last wait is shortened to end at the deadline, so one more attempt happens
            # exactly when time runs out rather than never.
            self.sleep(min(delay, remaining))
            attempt += 1
            yield attempt
            if self.clock() >= end:
                return
