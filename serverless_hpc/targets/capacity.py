"""``local-faas``'s CPU capacity: the CPU granted to the invocations in flight against the
machine's CPUs. When it exceeds them, every invocation in flight is marked
``oversubscribed`` (a warning is logged once); in ``hold`` mode
(``--target-opt local-faas.capacity=hold``) an invocation instead waits until its CPU fits.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from serverless_hpc.targets.instances import Closed, Throttled

log = logging.getLogger(__name__)


class CpuCapacity:
    """The CPU in flight on one target; ``announce`` says whether oversubscription is
    warned about (not when no CPU is controlled)."""

    def __init__(self, machine_cpus: int, *, hold: bool, announce: bool) -> None:
        self.machine_cpus = machine_cpus
        self.hold = hold
        self.announce = announce
        self._cv = threading.Condition()
        self._in_flight: dict[int, list[Any]] = {}  # token -> [cpus, oversubscribed]
        self._next_token = 0
        self._warned_oversubscribed = False
        self._closed = False

    def enter(self, cpus: float, deadline: float) -> int:
        """Count an invocation's ``cpus`` as in flight; in ``hold`` mode first wait until it fits.

        Marks every invocation in flight as oversubscribed once their CPU exceeds the
        machine's. Raises :class:`Throttled` when holding outlasts the deadline, and
        :class:`Closed` when the target closes while it holds.
        """
        with self._cv:
            if self.hold:
                while self._in_flight and (
                    sum(e[0] for e in self._in_flight.values()) + cpus > self.machine_cpus + 1e-9
                ):
                    if self._closed:
                        raise Closed
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Throttled
                    self._cv.wait(remaining)
            self._next_token += 1
            token = self._next_token
            self._in_flight[token] = [cpus, False]
            total = sum(e[0] for e in self._in_flight.values())
            if total > self.machine_cpus + 1e-9:
                for entry in self._in_flight.values():
                    entry[1] = True
                warn = not self._warned_oversubscribed
                self._warned_oversubscribed = True
            else:
                warn = False
        if warn and self.announce:
            log.warning(
                "local-faas: the CPU of the invocations in flight (%.2f) exceeds this machine's "
                "%d CPUs: their figures measure the machine, not the platform (records say "
                "'oversubscribed'; --target-opt local-faas.capacity=hold avoids it)",
                total,
                self.machine_cpus,
            )
        return token

    def leave(self, token: int | None) -> bool:
        """Stop counting an invocation; whether it was oversubscribed at any time."""
        if token is None:
            return False
        with self._cv:
            entry = self._in_flight.pop(token, None)
            self._cv.notify_all()
        return bool(entry and entry[1])

    def close(self) -> None:
        """Wake the invocations held back: they fail with :class:`Closed`."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
