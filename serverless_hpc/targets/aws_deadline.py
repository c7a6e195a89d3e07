"""One total deadline on every HTTP exchange of a boto3 client.

botocore's ``connect_timeout`` and ``read_timeout`` bound each socket read, so a server
that sends a byte every few seconds holds a call forever. :func:`bound` replaces a client's
HTTP sender with :class:`DeadlineSender`, which sends each prepared (already signed)
request with :mod:`aiohttp` on a network loop (:mod:`serverless_hpc.netloop`) under one
deadline for connecting, sending and reading the whole reply, and hands botocore the
same response object its own sender would. botocore's retries, waiters and error parsing
are unchanged; a deadline that passes is botocore's ``ReadTimeoutError``.

botocore has no public setter for the sender: :func:`bound` sets the endpoint's
``http_session``, the attribute botocore's own ``Endpoint`` sends through. Stubbers and
moto answer before it is reached (``before-call``/``before-send``), so tests that use them
are unaffected; ``tests/faults/test_total_deadlines.py`` checks the deadline for real.
"""

from __future__ import annotations

import logging
import ssl
import weakref
from typing import TYPE_CHECKING, Any, Final

from serverless_hpc.netloop import DeadlineExceeded, LoopThread, close_sessions, within

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

#: The deadline of one control-plane or S3 exchange (a waiter's polls are one each).
EXCHANGE_DEADLINE_S: Final = 60.0
#: Headers botocore's urllib3 sender leaves to urllib3 (never signed): not forwarded.
_DROPPED: Final = frozenset({"expect"})


class _Body:
    """The read side botocore expects of a response's ``raw`` (urllib3-like), over bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, amt: int | None = None, decode_content: bool = False) -> bytes:
        end = len(self._data) if amt is None else min(self._pos + amt, len(self._data))
        chunk, self._pos = self._data[self._pos : end], end
        return chunk

    def stream(self, amt: int = 1024, decode_content: bool = False) -> Any:
        while chunk := self.read(amt):
            yield chunk

    def close(self) -> None:
        self._pos = len(self._data)

    def readable(self) -> bool:
        return True


class DeadlineSender:
    """Stands in for botocore's ``URLLib3Session``: ``send(request) -> AWSResponse``."""

    def __init__(
        self, loop: LoopThread, *, deadline_s: float, verify: bool | ssl.SSLContext = True
    ) -> None:
        self.loop = loop
        self.deadline_s = deadline_s
        self.verify = verify
        self._sessions: list[aiohttp.ClientSession] = []
        self._finalizer = weakref.finalize(self, close_sessions, loop, self._sessions, what="aws")

    async def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if not self._sessions:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=16, ssl=self.verify),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
                skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
                auto_decompress=False,
                trust_env=True,  # HTTPS_PROXY and friends, as botocore honours them
            )
            self._sessions.append(session)
            self.loop.at_close(session.close)
        return self._sessions[0]

    async def _exchange(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        client = await self._client()
        body = request.body
        if hasattr(body, "read"):  # a file-like body: botocore rewinds it on a retry
            body = body.read()
        headers = {
            _text(k): _text(v)
            for k, v in request.headers.items()
            if _text(k).lower() not in _DROPPED
        }
        async with client.request(
            request.method, request.url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            data = await resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, data

    def send(self, request: Any) -> Any:
        """Send a prepared request under one deadline; botocore's ``AWSResponse``."""
        import aiohttp
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import (
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        what = f"{request.method} {request.url}"
        try:
            status, headers, data = self.loop.run(
                within(self._exchange(request), self.deadline_s, what),
                timeout_s=self.deadline_s,
            )
        except (DeadlineExceeded, TimeoutError):
            raise ReadTimeoutError(endpoint_url=request.url) from None
        except aiohttp.ClientConnectorError as exc:
            raise EndpointConnectionError(endpoint_url=request.url, error=exc) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionClosedError(endpoint_url=request.url, error=exc) from None
        return AWSResponse(request.url, status, headers, _Body(data))

    def close(self) -> None:
        """Close the connection pool (the loop is the caller's)."""
        self._finalizer()


def _text(value: str | bytes) -> str:
    """A header name or value as text (botocore keeps some as bytes)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def bound(
    client: Any, loop: LoopThread, *, deadline_s: float = EXCHANGE_DEADLINE_S
) -> DeadlineSender:
    """Make every HTTP exchange of boto3 ``client`` end by ``deadline_s``; its sender."""
    endpoint = client._endpoint
    setting = getattr(endpoint.http_session, "_verify", True)
    verify: bool | ssl.SSLContext = setting is not False
    if isinstance(setting, str):  # a CA bundle (AWS_CA_BUNDLE, ca_bundle in the profile)
        verify = ssl.create_default_context(cafile=setting)
    sender = DeadlineSender(loop, deadline_s=deadline_s, verify=verify)
    endpoint.http_session = sender
    return sender
