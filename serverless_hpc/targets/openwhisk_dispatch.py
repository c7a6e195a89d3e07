"""The ``openwhisk`` target's fan-out: every invocation of a batch on one network loop.

One coroutine per invocation that may be in flight (:func:`serverless_hpc.netloop.drain`),
over the client's bounded, reused connection pool. Per invocation:

* a forced cold start first updates the action (409 "concurrent modification" is retried
  with backoff within the deadline), then a blocking ``POST``; a 202 (the run outlived the
  blocking wait) is polled until the deadline, holding the slot (the activation is running);
* a **429**, or a request that provably never left (no connection), is re-sent after a
  backoff taken **outside** the slot, and counted (``throttled``, ``retries``); a request
  whose connection dropped after it may have been sent is a failure, never a second run;
* the invocation's deadline (its timeout) starts when it is first sent, and covers every
  attempt, poll and byte of every reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from serverless_hpc.contract import PLATFORM_ERROR, THROTTLED, TIMEOUT, error_response
from serverless_hpc.invocation import Outcome
from serverless_hpc.netloop import Attempts
from serverless_hpc.openwhisk.client import (
    MAX_BLOCKING_WAIT_MS,
    ActivationTimeout,
    ConflictError,
    NotSent,
    OpenWhiskClient,
    OpenWhiskError,
    ThrottledError,
)
from serverless_hpc.retry import Backoff
from serverless_hpc.targets.base import TimedOutcome

log = logging.getLogger(__name__)

#: Backoff after a 429 or an unsent request (full jitter, capped).
BACKOFF_BASE_S: Final = 0.2
BACKOFF_CAP_S: Final = 5.0
#: Backoff between retries of a forced-cold update that met a concurrent one (409).
UPDATE_BASE_S: Final = 0.05
UPDATE_CAP_S: Final = 1.0


#: Only its delays are used: each call's own deadline is its :class:`Call`'s.
_BACKOFF: Final = Backoff(0.0, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S)


class Call(Attempts):
    """One invocation of a batch across its attempts (deadline, counts and times:
    :class:`serverless_hpc.netloop.Attempts`)."""

    __slots__ = ("action", "force_cold", "outcome", "record", "request")

    def __init__(
        self,
        index: int,
        action: str,
        request: dict[str, Any],
        timeout_s: float,
        *,
        force_cold: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(index, timeout_s, clock)
        self.action, self.request, self.force_cold = action, request, force_cold
        self.record: dict[str, Any] | None = None
        self.outcome: Outcome | None = None

    def fail(self, error_type: str, message: str) -> None:
        """End the call with a failure envelope (nothing measured)."""
        self.outcome = Outcome(response=error_response(error_type, message), cold=False)

    def finished(self, outcome: Outcome) -> TimedOutcome:
        """``outcome`` with this call's counts and times."""
        return TimedOutcome.of(outcome, self)


async def attempt(client: OpenWhiskClient, slots: asyncio.Semaphore, call: Call) -> float | None:
    """Run ``call`` once; None when it has its record or outcome, else the backoff (s)."""
    async with slots:
        call.sending()
        try:
            if call.force_cold:
                await _retire_warm(client, call)
                call.force_cold = False  # done: a re-send must not update again
            call.record = await _run(client, call)
        except ThrottledError as exc:
            call.throttled += 1
            why: OpenWhiskError = exc
        except NotSent as exc:
            why = exc
        except ActivationTimeout as exc:
            call.fail(TIMEOUT, str(exc))
            return None
        except OpenWhiskError as exc:
            call.fail(PLATFORM_ERROR, str(exc))
            return None
        else:
            return None
    delay = _BACKOFF.delay(call.attempt)
    call.attempt += 1
    if call.left() <= delay:
        kind = THROTTLED if isinstance(why, ThrottledError) else PLATFORM_ERROR
        call.fail(
            kind,
            f"{why} -- still failing after {call.attempt} attempt(s) within the "
            f"{call.timeout_s:g} s deadline",
        )
        return None
    call.retries += 1
    log.info("%s: %s; re-sending after %.2f s", call.action, why, delay)
    return delay  # the wait happens outside the slot


async def _run(client: OpenWhiskClient, call: Call) -> dict[str, Any]:
    left = call.left()
    if left <= 0:
        raise ActivationTimeout(f"{call.action}: no time left to invoke")
    inv = await client.invoke_once(
        call.action,
        call.request,
        wait_ms=int(min(left * 1000, MAX_BLOCKING_WAIT_MS)),
        deadline_s=left,
    )
    if inv.record is not None:
        return inv.record
    log.info("activation %s accepted (202); polling", inv.activation_id)
    return await client.await_activation(inv.activation_id, deadline_s=max(call.left(), 0.0))


async def _retire_warm(client: OpenWhiskClient, call: Call) -> None:
    """Update the action so its warm containers are not reused (a forced cold start).

    Concurrent updates of one action (a forced-cold fan-out) can collide in the
    controller's store, which answers 409 "Concurrent modification": retried with backoff
    within the invocation's deadline.
    """
    backoff = Backoff(max(call.left(), 0.0), base_s=UPDATE_BASE_S, cap_s=UPDATE_CAP_S)
    path = client.action_path(call.action)
    last: ConflictError | None = None
    n = 0
    while (left := call.left()) > 0:
        try:
            await client.arequest(
                "PUT", path, params={"overwrite": "true"}, body={}, deadline_s=left
            )
        except ConflictError as exc:
            last = exc
            await asyncio.sleep(min(backoff.delay(n), max(call.left(), 0.0)))
            n += 1
            continue
        return
    raise ActivationTimeout(
        f"{call.action}: could not update the action to force a cold start: {last}"
    )
