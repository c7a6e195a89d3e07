"""A lean HTTP/1.1 keep-alive client for one endpoint, on asyncio: the Invoke fan-out's.

Why not :mod:`aiohttp`'s ``ClientSession.request`` here: per request it builds a request
object, a response object, a timer, trace hooks and case-insensitive header maps, and that
machinery was some 36% of the network loop's CPU in a 1,000-way fan-out (py-spy). A fan-out
sends the same few requests to one host again and again, so this client keeps only what
that needs: one :class:`asyncio.Protocol` per connection, the reply parsed in C by
:mod:`httptools` (llhttp, the parser Node.js uses), request bytes written in one call, and
a bounded pool of kept-alive connections (``benchmarks/fanout.py`` measures the difference;
the figures are in the README).

What it guarantees, because the caller's re-send rule depends on it:

* a connection is opened from a socket made by :func:`serverless_hpc.netloop.tracked_socket`,
  so :func:`~serverless_hpc.netloop.never_acknowledged` can tell whether an exchange that
  failed on its own new connection sent anything; :class:`ConnectFailed` means no
  connection was made (nothing was sent);
* a connection is reused only after a whole reply was read and the server kept it alive; a
  kept connection the server closed meanwhile is seen (EOF) and dropped, never written to;
  a connection whose exchange failed or was cancelled (a deadline) is closed;
* at most ``limit`` connections are open; callers beyond it wait in order for one;
* :meth:`HttpPool.close` closes every connection, idle or in use.

Deadlines are the caller's (:func:`serverless_hpc.netloop.within` around
:meth:`HttpPool.request`); connecting has its own bound (``connect_timeout_s``) within it.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httptools

from serverless_hpc.netloop import tracked_socket

#: The largest reply body read (Lambda's synchronous reply is at most 6 MB).
MAX_BODY: Final = 32 * 1024 * 1024


class HttpError(Exception):
    """An exchange that got no (whole) reply."""


class ConnectFailed(HttpError):
    """No connection could be made: nothing was sent."""


@dataclass(frozen=True, slots=True)
class Response:
    """A whole reply: status, headers (names in lower case) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection: writes a request, parses its reply (httptools callbacks)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.keep = False
        self.used_at = time.monotonic()
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is not sound
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"unreadable HTTP reply: {exc}"))

    def eof_received(self) -> bool:
        # a kept connection the server closed is never reused; a reply cut short fails
        # (connection_lost); a reply without a length, read to EOF, is not supported
        self.closed = True
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            self._fail(HttpError(f"the reply's body is over {MAX_BODY} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        self.keep = self.parser.should_keep_alive()
        reply = Response(self.parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body, self._size = {}, [], 0
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    # --
    def send(self, head: bytes, body: bytes) -> asyncio.Future[Response]:
        """Write one request; the future of its reply."""
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.keep = False
        if len(body) < 65536:  # one write, one system call
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return self.waiter

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class HttpPool:
    """Kept-alive HTTP/1.1 connections to one ``http``/``https`` host; see the module
    docstring. Used from one event loop; ``limit`` bounds the open connections."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        limit: int,
        keepalive_s: float,
        connect_timeout_s: float,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"not an http or https endpoint: {scheme!r}")
        self.host = host
        self.port = port
        self.limit = max(1, limit)
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if scheme == "https" else None
        )
        self._idle: list[_Connection] = []
        self._every: set[_Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open or being opened."""
        return len(self._every) + self._opening

    async def request(self, head: bytes, body: bytes) -> Response:
        """Send ``head`` (request line and headers, ending with the blank line) and ``body``
        on a pooled connection; the whole reply. :class:`ConnectFailed` when no connection
        could be made, :class:`HttpError` or :class:`OSError` when one failed."""
        conn = await self._acquire()
        reusable = False
        try:
            reply = await conn.send(head, body)
            reusable = conn.keep and not conn.closed
            return reply
        finally:
            self._release(conn, reusable)

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise HttpError("the connection pool is closed")
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and now - conn.used_at < self.keepalive_s:
                    return conn
                self._drop(conn)
            if self.open_connections < self.limit:
                return await self._open()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake()  # pass on a wake-up this caller can no longer take
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._opening += 1
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                sock = await self._connect(loop)
            _, conn = await loop.create_connection(
                _Connection,
                sock=sock,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            )
            self._every.add(conn)
        except (OSError, TimeoutError) as exc:
            if sock is not None:
                sock.close()
            why = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {why}") from None
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            self._opening -= 1
            self._wake_if_room()
        return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A connected socket: each of the host's addresses in turn (IPv6 and IPv4 alike),
        the last one's error when none connects."""
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {self.host}")
        for info in infos:
            sock = tracked_socket(info)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, info[4])
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
            else:
                return sock
        raise error

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed:
            conn.used_at = time.monotonic()
            self._idle.append(conn)
        else:
            self._drop(conn)
        self._wake()

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._every.discard(conn)

    def _wake(self) -> None:
        """Let the first caller waiting for a connection look again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_if_room(self) -> None:
        if self.open_connections < self.limit:
            self._wake()

    async def close(self) -> None:
        """Close every connection; later requests fail with :class:`HttpError`."""
        self._closed = True
        for conn in list(self._every):
            self._drop(conn)
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def request_head(
    method: str, target: str, host: str, headers: Mapping[str, Any], size: int
) -> bytes:
    """The request line and headers of one request (``target``: the path and query exactly
    as signed; ``host``: the ``Host`` header). ValueError for a line break in any part."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {size}")
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("a request line or header holds a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
