"""The HTTP side of the OpenWhisk REST client (:mod:`serverless_hpc.openwhisk.client`):
one request under one total deadline, its retries, and HTTP statuses turned into exceptions
a caller can act on, as the OpenWhisk REST API documents them:

* 401 / 403 -> :class:`AuthenticationError` (check the AUTH key / namespace);
* 404 -> :class:`NotFoundError`; 409 -> :class:`ConflictError` (create without overwrite);
* 413 -> :class:`PayloadTooLargeError`; other 4xx -> :class:`RequestError`;
* 429 -> retried with exponential backoff and jitter until the deadline, then
  :class:`ThrottledError`;
* 502 on an invocation is the action's own failure (an *application* or *developer* error:
  the activation record is returned to the caller); 502 elsewhere and every other 5xx, and
  an unreachable host, are :class:`PlatformError`.

Every error body ``{"error": ..., "code": <transaction id>}`` is quoted in the exception,
scrubbed of credentials first (a controller or proxy that echoes the request headers would
otherwise put the Basic authorization, i.e. the AUTH key, into a message); the AUTH key
never appears in a message or a log line.

Waiting is bounded: a call's deadline covers all of it (connecting, sending, every byte of
the reply, the retries), however slowly the controller sends: the exchanges run on a
network loop (:mod:`serverless_hpc.netloop`) that cancels them at the deadline. A request
that never left (no connection) is retried within it, and so is an idempotent one (GET, or a
PUT with overwrite) whose connection drops; an invocation whose connection drops after it
may have been sent is never resent. Connections are pooled (``pool_size`` at most) and
reused. A call that is still waiting after :data:`SLOW_NOTICE_S` says so on the log
(warning, a timer on the loop, no thread), so a silent controller is never a silent hang.
A success status whose body is not JSON is a :class:`PlatformError`, not a crash in the
caller. ``aiohttp`` is imported when a client is built, not when this module is.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from serverless_hpc.netloop import (
    DeadlineExceeded,
    LoopThread,
    close_sessions,
    never_acknowledged,
    opened_sockets,
    tracked_socket,
    within,
)
from serverless_hpc.openwhisk.config import Credentials
from serverless_hpc.openwhisk.errors import (
    AuthenticationError,
    ConflictError,
    DeadlinePassed,
    Dropped,
    NotFoundError,
    NotSent,
    OpenWhiskError,
    PayloadTooLargeError,
    PlatformError,
    RequestError,
    ThrottledError,
    error_text,
)
from serverless_hpc.redact import scrub
from serverless_hpc.retry import Backoff

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S: Final = 60.0
#: A call still waiting after this long logs a warning naming the controller and the call.
SLOW_NOTICE_S: Final = 10.0
#: Seconds to open a connection (within the call's deadline).
CONNECT_TIMEOUT_S: Final = 10.0
#: Idle pooled connections are closed after this long.
KEEPALIVE_S: Final = 10.0
#: Methods safe to resend when the connection drops; a PUT with ``overwrite=true`` (an
#: upsert) is too (see :func:`_idempotent`).
IDEMPOTENT: Final = frozenset({"GET", "HEAD"})


def _idempotent(method: str, params: dict[str, str] | None) -> bool:
    """Whether resending the request cannot do anything the first one did not."""
    return method in IDEMPOTENT or (method == "PUT" and (params or {}).get("overwrite") == "true")


class Transport:
    """The HTTP exchanges with one controller: a connection pool on a network loop, each
    call bounded by its deadline; :class:`~serverless_hpc.openwhisk.client.OpenWhiskClient`
    builds the REST calls on it (see there for the arguments)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        deadline_s: float | None = None,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 5.0,
        pool_size: int = 16,
        slow_notice_s: float | Literal["default"] | None = "default",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``slow_notice_s`` None turns the slow-call warning off; ``clock`` is a test seam."""
        import aiohttp

        self.credentials = credentials
        self.slow_notice_s = SLOW_NOTICE_S if slow_notice_s == "default" else slow_notice_s
        self._clock = clock
        self.base_url = credentials.base_url
        self.deadline_s = DEFAULT_DEADLINE_S if deadline_s is None else deadline_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.pool_size = max(pool_size, 1)
        user, password = credentials.basic_auth()
        self._authorization = aiohttp.encode_basic_auth(user, password)
        #: TLS certificate verification (off only for ``-i``).
        self.verify = not credentials.insecure
        self.loop = LoopThread("openwhisk")
        #: The connection pool, once made (a list the finalizer shares).
        self._sessions: list[aiohttp.ClientSession] = []
        # a client nobody closed still closes its pool and loop (when collected, or at exit)
        self._finalizer = weakref.finalize(
            self, close_sessions, self.loop, self._sessions, what="openwhisk", close_loop=True
        )
        if credentials.insecure:
            # The user asked for -i (a self-signed controller): said once per client.
            log.warning("TLS certificate verification is off for %s", self.base_url)

    def close(self) -> None:
        """Close the connection pool and the network loop."""
        self._finalizer()

    # -- plumbing -------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """``text`` without this client's AUTH key (in any form) or other credentials."""
        return scrub(text, (self.credentials.auth,))

    async def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if not self._sessions:
            connector = aiohttp.TCPConnector(
                limit=self.pool_size,
                limit_per_host=self.pool_size,
                ssl=self.verify,  # True: verify certificates (the default); False: -i
                keepalive_timeout=KEEPALIVE_S,
                socket_factory=tracked_socket,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"Accept": "application/json", "Authorization": self._authorization},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
            )
            self._sessions.append(session)
            self.loop.at_close(session.close)
        return self._sessions[0]

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        deadline_s: float | None = None,
    ) -> tuple[int, Any]:
        """Send one request within the deadline; return (status, decoded JSON body).

        429 is retried with backoff, and so is a request that never left (no connection)
        or, on an idempotent method, whose connection dropped; the one deadline covers
        every attempt, connection, byte sent and byte read, so the whole call ends by it.
        Statuses in ``ok`` with a JSON body are returned; every other outcome raises the
        matching :class:`OpenWhiskError` subclass.
        """
        deadline = self.deadline_s if deadline_s is None else deadline_s
        call = self.arequest(method, path, params=params, body=body, ok=ok, deadline_s=deadline)
        try:
            return self.loop.run(call, timeout_s=deadline)
        except TimeoutError:  # the loop itself did not answer (the call bounds itself)
            raise PlatformError(self._late(method, path, deadline)) from None

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        deadline_s: float,
    ) -> tuple[int, Any]:
        """:meth:`request` on the network loop (retries and their backoff included)."""
        loop = asyncio.get_running_loop()
        notice = None
        if self.slow_notice_s is not None and deadline_s > self.slow_notice_s:
            notice = loop.call_later(
                self.slow_notice_s,
                functools.partial(
                    log.warning,
                    "still waiting for the OpenWhisk controller at %s (%s %s): no answer "
                    "after %.0f s; giving up after %.0f s",
                    self.base_url,
                    method,
                    path,
                    self.slow_notice_s,
                    deadline_s,
                ),
            )
        try:
            return await self._retrying(method, path, params, body, ok, deadline_s)
        finally:
            if notice is not None:
                notice.cancel()

    async def _retrying(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: Any,
        ok: tuple[int, ...],
        deadline_s: float,
    ) -> tuple[int, Any]:
        end = self._clock() + deadline_s
        backoff = Backoff(
            deadline_s, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, clock=self._clock
        )
        idempotent = _idempotent(method, params)
        last: OpenWhiskError | None = None
        attempt = 0
        while True:
            left = end - self._clock()
            if left <= 0:
                break
            try:
                return await self.attempt(
                    method, path, params=params, body=body, ok=ok, deadline_s=left
                )
            except DeadlinePassed:  # said with the call's deadline, not the attempt's rest
                if isinstance(last, ThrottledError):
                    break  # throttled until the time ran out: said as such below
                raise DeadlinePassed(self._late(method, path, deadline_s)) from None
            except ThrottledError as exc:
                last = exc
                log.info("throttled (429) on %s %s; backing off", method, path)
            except NotSent as exc:
                last = exc
                log.info("%s %s: not sent (%s); retrying", method, path, exc)
            except Dropped as exc:
                if not idempotent:  # an invocation may have started: never resend
                    raise
                last = exc
                log.info("%s %s: connection dropped (%s); retrying", method, path, exc)
            delay = min(backoff.delay(attempt), max(end - self._clock(), 0.0))
            attempt += 1
            await asyncio.sleep(delay)
        if isinstance(last, ThrottledError) or last is None:
            raise ThrottledError(
                f"{last or f'{method} {path}: HTTP 429'} -- still throttled after "
                f"{deadline_s:.0f} s of retries",
                status=429,
            )
        raise PlatformError(f"{last} -- still failing after {deadline_s:g} s of retries")

    async def attempt(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        deadline_s: float,
    ) -> tuple[int, Any]:
        """One HTTP exchange under one total deadline, no retry; on the network loop.

        Raises :class:`ThrottledError` on 429, :class:`NotSent` when the request provably
        never reached the controller (no connection, or the connection it opened failed
        before any byte was acknowledged: :func:`serverless_hpc.netloop.never_acknowledged`),
        :class:`Dropped` when the connection failed after the request may have been
        received, :class:`DeadlinePassed` at the deadline.
        """
        import aiohttp

        client = await self._client()

        async def exchange() -> tuple[int, bytes]:
            async with client.request(
                method, self.base_url + path, params=params, json=body
            ) as resp:
                return resp.status, await resp.read()

        with opened_sockets() as opened:
            try:
                status, raw = await within(exchange(), deadline_s, f"{method} {path}")
            except DeadlineExceeded:
                raise DeadlinePassed(self._late(method, path, deadline_s)) from None
            except aiohttp.ClientConnectorError as exc:
                raise NotSent(self._unreachable(method, path, exc)) from None
            except (aiohttp.ClientError, OSError) as exc:
                if never_acknowledged(opened):  # its connection failed before any byte arrived
                    raise NotSent(self._unreachable(method, path, exc)) from None
                raise Dropped(self._unreachable(method, path, exc)) from None
        text = raw.decode("utf-8", errors="replace")
        try:
            decoded: Any = json.loads(text) if text else None
        except ValueError:
            decoded = None
        log.debug("%s %s -> %d", method, path, status)
        if status in ok:
            if decoded is None:
                raise PlatformError(
                    f"{method} {path}: the controller at {self.base_url} answered HTTP "
                    f"{status} with a body that is not JSON: {self._scrub(text[:120])!r}",
                    status=status,
                )
            return status, decoded
        raise self._error_for(method, path, status, decoded if decoded is not None else text)

    def _late(self, method: str, path: str, deadline_s: float) -> str:
        return (
            f"{method} {path}: no answer from the controller at {self.base_url} "
            f"within the {deadline_s:g} s deadline"
        )

    def _unreachable(self, method: str, path: str, exc: Exception) -> str:
        return self._scrub(
            f"{method} {path}: cannot reach the controller at {self.base_url}: "
            f"{type(exc).__name__}: {exc}"
        )

    def _error_for(self, method: str, path: str, status: int, body: Any) -> OpenWhiskError:
        text, code = error_text(body)
        text = self._scrub(text)
        where = f"{method} {path}: HTTP {status}: {text}" + (f" (code {code})" if code else "")
        if status in (401, 403):
            return AuthenticationError(
                f"{where}. Check AUTH and NAMESPACE in your wsk properties "
                "(~/.wskprops, $WSK_CONFIG_FILE or WHISK_AUTH).",
                status=status,
                code=code,
            )
        kinds: dict[int, type[OpenWhiskError]] = {
            404: NotFoundError,
            409: ConflictError,
            413: PayloadTooLargeError,
            429: ThrottledError,
        }
        if status in kinds:
            return kinds[status](where, status=status, code=code)
        if status >= 500:
            return PlatformError(f"OpenWhisk platform error: {where}", status=status, code=code)
        return RequestError(where, status=status, code=code)
