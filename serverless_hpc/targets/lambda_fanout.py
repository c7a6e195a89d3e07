"""The ``lambda`` target's fan-out: a batch's Invoke requests on the dispatcher's loop.

As many senders as requests may be in flight (:func:`serverless_hpc.netloop.drain`), one
in-flight semaphore per target (so single invocations from the driver's threads share it),
and the retry policy: a request is re-sent only when it provably never ran (an answer that
says so, :data:`RETRYABLE_CODES`, or no connection at all), after a backoff taken outside
its slot; throttles and re-sends are counted in its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from serverless_hpc.contract import PLATFORM_ERROR, THROTTLED, TIMEOUT, error_response
from serverless_hpc.invocation import Outcome
from serverless_hpc.netloop import drain
from serverless_hpc.retry import Backoff
from serverless_hpc.targets.base import TimedOutcome
from serverless_hpc.targets.lambda_dispatch import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    Attempts,
    Dispatcher,
    InvokeError,
    Reply,
)

log = logging.getLogger(__name__)

#: Error codes that say the function did not run, so re-sending cannot run it twice:
#: throttling and Lambda's transient "not ready" state. (A ``ServiceException`` may come
#: after the function ran: it is a failure, not re-sent.)
RETRYABLE_CODES: Final = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "EC2ThrottledException",
        "ResourceNotReadyException",
    }
)
#: The codes among those that are throttling (counted in ``Outcome.throttled``).
THROTTLE_CODES: Final = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "EC2ThrottledException"}
)
#: Attempts of one invocation at most (the deadline usually ends them first).
MAX_ATTEMPTS: Final = 50


def outcome_of(error_type: str, message: str) -> Outcome:
    """A failed invocation's outcome (nothing measured)."""
    return Outcome(response=error_response(error_type, message), cold=False)


def failed(error_type: str, message: str) -> TimedOutcome:
    """A request that was never sent: a failed outcome at this instant."""
    now = time.time()
    return TimedOutcome(outcome_of(error_type, message), 0.0, now, now)


class FanOut:
    """Sends batches through ``dispatcher``; ``outcome`` reads a successful reply."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        functions: Mapping[str, str],
        limit: int,
        *,
        outcome: Callable[[str, Reply], Outcome],
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``clock``/``rng``/``sleep`` are test seams (a fake clock's sleep moves it)."""
        self.dispatcher = dispatcher
        self.functions = functions
        self.limit = limit
        self.outcome = outcome
        self._clock, self._rng, self._sleep = clock, rng, sleep
        # only its delays are used: each request's own deadline is its Attempts'
        self._backoff = Backoff(
            0.0, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S, clock=clock, rng=rng
        )
        self._slots: asyncio.Semaphore | None = None

    async def run(
        self, requests: Sequence[dict[str, Any]], timeout_s: float, refused: dict[str, str]
    ) -> list[TimedOutcome]:
        """Send every request, at most ``limit`` at once (:func:`netloop.drain`): a request
        to re-send waits its backoff outside any slot. On the dispatcher's loop."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)  # made on the loop it serves
        out: list[TimedOutcome | None] = [None] * len(requests)
        jobs: list[Attempts] = []
        for index, req in enumerate(requests):
            early = self._refusal(req, refused)
            if early is not None:
                out[index] = early
            else:
                jobs.append(Attempts(index, req, timeout_s, self._clock))

        async def attempt(state: Attempts) -> float | None:
            delay = await self._attempt(state)
            if delay is None:
                out[state.index] = state.finished()
            return delay

        await drain(jobs, self.limit, attempt)
        return [t for t in out if t is not None]

    def _refusal(self, request: dict[str, Any], refused: dict[str, str]) -> TimedOutcome | None:
        """The outcome of a request that is not sent at all, else None."""
        workload = str(request.get("workload", ""))
        if workload not in self.functions:
            return failed("InvalidRequest", f"field 'workload': no function for {workload!r}")
        if workload in refused:
            return failed(PLATFORM_ERROR, refused[workload])
        return None

    async def _attempt(self, state: Attempts) -> float | None:
        """Send ``state``'s request once; None when it has its outcome, else the backoff (s)."""
        assert self._slots is not None
        fn = self.functions[str(state.request.get("workload", ""))]
        reply: Reply | InvokeError
        async with self._slots:
            state.sending()
            try:
                reply = await self.dispatcher.invoke(fn, state.body, deadline_s=state.left())
            except InvokeError as exc:
                reply = exc
        outcome, code, why = self._verdict(fn, reply)
        if outcome is not None:
            state.outcome = outcome
            return None
        state.throttled += code in THROTTLE_CODES
        delay = self._backoff.delay(state.attempt)
        state.attempt += 1
        if state.left() <= delay or state.attempt >= MAX_ATTEMPTS:
            kind = THROTTLED if code in THROTTLE_CODES else PLATFORM_ERROR
            state.outcome = outcome_of(
                kind,
                f"{fn}: still {why} after {state.attempt} attempt(s); the "
                f"{state.timeout_s:g} s deadline would pass",
            )
            return None
        log.info("%s: %s, retrying after %.2f s (attempt %d)", fn, code, delay, state.attempt)
        state.retries += 1
        if self._sleep is not time.sleep:  # tests' fake clock: the wait happens on it
            self._sleep(delay)
            return 0.0
        return delay

    def _verdict(self, fn: str, reply: Reply | InvokeError) -> tuple[Outcome | None, str, str]:
        """The outcome of one attempt, or (None, code, why) when it may be re-sent.

        Re-sent only when the function provably did not run: an answer that says so
        (:data:`RETRYABLE_CODES`) or no connection at all.
        """
        if isinstance(reply, InvokeError):
            if reply.timed_out:
                return outcome_of(TIMEOUT, f"{fn}: {reply}"), "", ""
            if reply.sent:  # it may have reached the platform: never a second invocation
                return outcome_of(PLATFORM_ERROR, f"{fn}: {reply}"), "", ""
            return None, "unreachable", str(reply)
        if reply.status < 400:
            return self.outcome(fn, reply), "", ""
        code = reply.error_code()
        why = f"{code}: {reply.error_message()}"
        if code not in RETRYABLE_CODES:
            return outcome_of(PLATFORM_ERROR, f"{fn}: HTTP {reply.status} {why}"), "", ""
        return None, code, why
