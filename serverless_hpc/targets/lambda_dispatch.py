"""The ``lambda`` target's data plane: SigV4-signed Invoke requests over one async HTTP pool.

Why not ``boto3``'s ``invoke`` from a thread pool: each call costs about 1.5 ms of CPU under
the GIL, so a 2-core driver dispatches some 600 a second and never holds a 1,000-way fan-out
in flight (``benchmarks/fanout.py`` measures both ways; the figures are in the README). Here
a request is signed from a reused SigV4 template (:class:`Signer`) and sent on the network
loop (:mod:`serverless_hpc.netloop`) by a lean keep-alive HTTP/1.1 client
(:mod:`serverless_hpc.httppool`: about half of aiohttp's CPU per request, measured), one
coroutine per request in flight:

* the connection pool is bounded (``limit``) and reused across batches;
* every exchange has **one** deadline for connecting, sending and reading the whole reply;
* an error says whether the request may have reached the platform (:attr:`InvokeError.sent`):
  not when no connection could be made, or when the connection it opened failed before the
  peer acknowledged any byte (:func:`serverless_hpc.netloop.never_acknowledged`); the
  caller re-sends only what provably never got there.

Credentials come from botocore (refreshed by it when they are temporary); the endpoint is
the control-plane client's (``endpoint_url`` included), so both planes reach one place.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import SplitResult, quote, urlsplit

from serverless_hpc import netloop
from serverless_hpc.invocation import Outcome
from serverless_hpc.netloop import (
    DeadlineExceeded,
    LoopThread,
    close_sessions,
    never_acknowledged,
    opened_sockets,
    within,
)
from serverless_hpc.targets.base import TimedOutcome

if TYPE_CHECKING:
    from serverless_hpc.httppool import HttpPool

log = logging.getLogger(__name__)

INVOKE_PATH: Final = "/2015-03-31/functions/{name}/invocations"
SETTINGS_PATH: Final = "/2016-08-19/account-settings/"
#: Seconds to open a connection (within the exchange's deadline).
CONNECT_TIMEOUT_S: Final = 10.0
#: Idle pooled connections are closed after this long, before a server would drop them.
KEEPALIVE_S: Final = 10.0
#: Throttling backoff: full jitter over ``BACKOFF_BASE_S * 2**n`` capped at ``BACKOFF_CAP_S``.
BACKOFF_BASE_S: Final = 0.25
BACKOFF_CAP_S: Final = 8.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the endpoint answered: status, headers (names looked up in lower case; the
    reply's own case-insensitive mapping, not a copy) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def error_code(self) -> str:
        """The API error code of a failed reply (``x-amzn-ErrorType`` or the JSON body)."""
        header = self.headers.get("x-amzn-errortype", "")
        if header:
            return header.split(":", 1)[0]
        try:
            data = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"HTTP{self.status}"
        if isinstance(data, dict):
            code = data.get("__type") or data.get("Type") or data.get("code")
            if isinstance(code, str) and code != "User":
                return code.rsplit("#", 1)[-1]
        return f"HTTP{self.status}"

    def error_message(self) -> str:
        """The API error message of a failed reply (at most 300 characters)."""
        try:
            data = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self.body[:300].decode("utf-8", errors="replace")
        if isinstance(data, dict):
            msg = data.get("message") or data.get("Message")
            if isinstance(msg, str):
                return msg[:300]
        return str(data)[:300]


class InvokeError(Exception):
    """An exchange that got no reply; ``sent`` False when it provably never left here."""

    def __init__(self, message: str, *, sent: bool, timed_out: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class _Template:
    """What a request's canonical form takes from its method, URL and caller's headers."""

    head: str  # the method, the canonical URI and the canonical query, one per line
    canon: dict[str, str]  # the caller's headers and ``host``, canonical (lower-case names)


#: Templates kept per signer (one per distinct method, URL and header set; a batch uses one
#: per function).
TEMPLATES: Final = 256


class Signer:
    """SigV4 (``AWS4-HMAC-SHA256``) for one service and region, from a reused template.

    The same computation as botocore's ``SigV4Auth`` (a test checks they agree), without its
    per-request objects: the scope and the day's signing key are computed once per day and
    credentials, the canonical URI, query and the caller's canonical headers once per
    method, URL and header set, the timestamp once per second; a request adds its date,
    token and two SHA-256 digests. About a tenth of botocore's CPU per request (19 µs against
    210 µs, measured on the 2-core development machine), which is what lets one driver sign a
    thousand requests at once.

    ``credentials`` is a botocore credentials object (static or refreshable); each request
    uses its current frozen value, so temporary credentials are renewed as botocore renews
    them. Signed headers: ``host``, ``x-amz-date``, the session token and the caller's.
    ``now`` (a test seam) replaces the clock.
    """

    def __init__(
        self,
        credentials: Any,
        region: str,
        service: str = "lambda",
        *,
        now: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self._now = now
        self._key: tuple[str, str, bytes] | None = None  # (day, secret, signing key)
        self._second = -1  # the whole unix second of ``_stamp``
        self._stamp = ""
        self._templates: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Template] = {}

    def _signing_key(self, day: str, secret: str) -> bytes:
        if self._key is None or self._key[:2] != (day, secret):
            key = _hmac(("AWS4" + secret).encode(), day)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._key = (day, secret, key)
        return self._key[2]

    def _timestamp(self) -> str:
        """``X-Amz-Date``: the current second, formatted once per second."""
        if self._now is not None:
            return self._now().strftime("%Y%m%dT%H%M%SZ")
        second = int(time.time())
        if second != self._second:
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._stamp

    def _template(self, method: str, url: str, headers: Mapping[str, str]) -> _Template:
        key = (method, url, tuple(headers.items()))
        found = self._templates.get(key)
        if found is None:
            parts = urlsplit(url)
            head = "\n".join(
                (method.upper(), quote(parts.path or "/", safe="/~"), _canonical_query(parts.query))
            )
            canon = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
            canon["host"] = _host(parts)
            found = _Template(head, canon)
            if len(self._templates) >= TEMPLATES:
                self._templates.clear()
            self._templates[key] = found
        return found

    def headers(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` plus ``X-Amz-Date``, the session token and ``Authorization``."""
        frozen = self.credentials.get_frozen_credentials()
        template = self._template(method, url, headers)
        stamp = self._timestamp()
        out = dict(headers)
        out["X-Amz-Date"] = stamp
        canon = dict(template.canon)
        canon["x-amz-date"] = stamp
        if frozen.token:
            out["X-Amz-Security-Token"] = frozen.token
            canon["x-amz-security-token"] = " ".join(frozen.token.split())
        names = sorted(canon)
        signed = ";".join(names)
        request = "\n".join(
            (
                template.head,
                "".join(f"{n}:{canon[n]}\n" for n in names),
                signed,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{stamp[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(request.encode()).hexdigest())
        )
        key = self._signing_key(stamp[:8], frozen.secret_key)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return out


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _host(parts: SplitResult) -> str:
    """The ``host`` header as HTTP clients send it (no default port)."""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _canonical_query(query: str) -> str:
    """The query string sorted by key then value (already URI-encoded by the caller)."""
    if not query:
        return ""
    pairs = sorted(tuple(p.partition("=")[::2]) for p in query.split("&"))
    return "&".join(f"{k}={v}" for k, v in pairs)


class Dispatcher:
    """Signed Lambda API requests on the network loop; see the module docstring.

    ``limit`` bounds the open connections (the target's in-flight limit). Thread-safe: the
    coroutines run on ``loop``; :meth:`close` releases the pool.
    """

    def __init__(
        self, endpoint_url: str, signer: Signer, *, limit: int, loop: LoopThread | None = None
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an endpoint URL: {endpoint_url!r}")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self._host = _host(parts)  # the Host header, as signed
        self.signer = signer
        self.limit = max(1, limit)
        self.loop = loop or LoopThread("lambda-dispatch")
        #: The connection pool, once made (a list the finalizer shares).
        self._pools: list[HttpPool] = []
        # a dispatcher nobody closed still closes its pool (when collected, or at exit)
        self._finalizer = weakref.finalize(
            self,
            close_sessions,
            self.loop,
            self._pools,
            what="lambda dispatch",
            close_loop=loop is None,
        )

    def _pool(self) -> HttpPool:
        if not self._pools:
            from serverless_hpc.httppool import HttpPool

            parts = urlsplit(self.endpoint)
            pool = HttpPool(
                parts.scheme,
                parts.hostname or "",
                parts.port or (443 if parts.scheme == "https" else 80),
                limit=self.limit,
                keepalive_s=KEEPALIVE_S,
                connect_timeout_s=CONNECT_TIMEOUT_S,
            )
            self._pools.append(pool)
            self.loop.at_close(pool.close)
        return self._pools[0]

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        deadline_s: float,
    ) -> Reply:
        """One signed exchange under one total deadline; :class:`InvokeError` without a reply."""
        from serverless_hpc.httppool import ConnectFailed, HttpError, request_head

        url = self.endpoint + path
        signed = self.signer.headers(method, url, body, headers or {})
        head = request_head(method, path, self._host, signed, len(body))
        pool = self._pool()
        with opened_sockets() as opened:
            try:
                got = await within(pool.request(head, body), deadline_s, f"{method} {path}")
            except DeadlineExceeded as exc:
                raise InvokeError(str(exc), sent=True, timed_out=True) from None
            except ConnectFailed as exc:  # no connection: nothing was sent
                raise InvokeError(str(exc), sent=False) from None
            except (HttpError, OSError) as exc:
                # unsent only if its own new connection failed before any byte arrived
                msg = f"{method} {path}: {type(exc).__name__}: {exc}"
                raise InvokeError(msg, sent=not never_acknowledged(opened)) from None
        return Reply(got.status, got.headers, got.body)

    async def invoke(self, function: str, payload: bytes, *, deadline_s: float) -> Reply:
        """A synchronous (``RequestResponse``) Invoke with the log tail."""
        path = INVOKE_PATH.format(name=quote(function, safe=""))
        headers = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"}
        return await self.request(
            "POST", path, body=payload, headers=headers, deadline_s=deadline_s
        )

    def account_limits(self, *, deadline_s: float) -> dict[str, Any]:
        """``GetAccountSettings``' ``AccountLimit`` (blocking); :class:`InvokeError` on failure."""
        reply = self.loop.run(
            self.request("GET", SETTINGS_PATH, deadline_s=deadline_s), timeout_s=deadline_s
        )
        if reply.status != 200:
            raise InvokeError(
                f"GetAccountSettings: HTTP {reply.status} {reply.error_code()}: "
                f"{reply.error_message()}",
                sent=True,
            )
        try:
            limits = json.loads(reply.body).get("AccountLimit")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            limits = None
        if not isinstance(limits, dict):
            raise InvokeError("GetAccountSettings: no AccountLimit in the answer", sent=True)
        return limits

    def close(self) -> None:
        """Close the connection pool (and the loop, when this dispatcher started it)."""
        self._finalizer()


class Attempts(netloop.Attempts):
    """One Invoke request of a batch across its attempts (deadline, counts and times:
    :class:`serverless_hpc.netloop.Attempts`), its body encoded once for every send."""

    __slots__ = ("body", "outcome", "request")

    def __init__(
        self, index: int, request: dict[str, Any], timeout_s: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(index, timeout_s, clock)
        self.request = request
        self.body = json.dumps(request).encode()
        self.outcome: Outcome | None = None

    def finished(self) -> TimedOutcome:
        """The timed outcome, with the throttles and retries it took."""
        assert self.outcome is not None
        return TimedOutcome.of(self.outcome, self)
