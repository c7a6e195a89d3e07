"""The Invoke fan-out's HTTP/1.1 client (``serverless_hpc.httppool``) against small servers
on loopback: keep-alive, chunked replies, connections the server closes, the pool's bound,
failures and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from serverless_hpc.httppool import ConnectFailed, HttpError, HttpPool, request_head

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Server:
    """A loopback server that runs ``handler`` per connection and counts them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.open += 1
            self.peak_open = max(self.peak_open, self.open)
            try:
                await self.handler(reader, writer, self.connections)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client went away: what some tests do on purpose
            finally:
                self.open -= 1
                writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    size = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":")[1])
    return head + await reader.readexactly(size)


def reply(body: bytes = b"ok", *, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def pool_for(server: Server, *, limit: int = 4, keepalive_s: float = 10.0) -> HttpPool:
    return HttpPool(
        "http", "127.0.0.1", server.port, limit=limit, keepalive_s=keepalive_s, connect_timeout_s=5
    )


def post(pool: HttpPool, body: bytes = b"{}") -> Awaitable[Any]:
    head = request_head("POST", "/f/invocations", f"127.0.0.1:{pool.port}", {"X-A": "1"}, len(body))
    return pool.request(head, body)


def run(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` (30 s at most) on a loop of its own. Not ``asyncio.run``: that leaves
    the main thread without a current loop, which later tests' libraries ask for."""

    async def main() -> Any:
        return await asyncio.wait_for(coro, 30)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while True:
        request = await read_request(reader)
        writer.write(reply(b"echo:" + request.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


def test_a_kept_alive_connection_serves_request_after_request() -> None:
    async def go() -> None:
        async with Server(keep_alive) as server:
            pool = pool_for(server)
            for i in range(5):
                got = await post(pool, f"{i}".encode())
                assert (got.status, got.body) == (200, f"echo:{i}".encode())
                assert got.headers["content-length"] == str(len(got.body))
            assert server.connections == 1
            await pool.close()

    run(go())


def test_the_request_goes_out_as_given() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        seen.append(await read_request(reader))
        writer.write(reply())
        await writer.drain()

    async def go() -> None:
        async with Server(record) as server:
            pool = pool_for(server)
            await post(pool, b'{"a": 1}')
            await pool.close()

    run(go())
    head, body = seen[0].split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /f/invocations HTTP/1.1"
    assert b"X-A: 1" in lines and b"Content-Length: 8" in lines and body == b'{"a": 1}'


def test_a_large_body_is_sent_whole() -> None:
    async def go() -> None:
        async with Server(keep_alive) as server:
            pool = pool_for(server)
            big = b"x" * 300_000
            got = await post(pool, big)
            assert got.body == b"echo:" + big
            await pool.close()

    run(go())


def test_a_chunked_reply_split_over_many_segments_is_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        wire = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amz-Function-Error: Unhandled"
            b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        for i in range(len(wire)):  # one byte a write
            writer.write(wire[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    async def go() -> None:
        async with Server(chunked) as server:
            pool = pool_for(server)
            got = await post(pool)
            assert got.body == b"hello world"
            assert got.headers["x-amz-function-error"] == "Unhandled"  # names in lower case
            await pool.close()

    run(go())


def test_connection_close_from_the_server_is_honoured() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(reply(extra="Connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(0.5)  # keeps the socket open: the header alone must decide

    async def go() -> None:
        async with Server(once) as server:
            pool = pool_for(server)
            for _ in range(3):
                assert (await post(pool)).status == 200
            assert server.connections == 3
            await pool.close()

    run(go())


def test_a_kept_connection_the_server_closed_is_not_written_to() -> None:
    async def then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(reply())
        await writer.drain()
        # then closes while idle, as servers do after their keep-alive time

    async def go() -> None:
        async with Server(then_close) as server:
            pool = pool_for(server)
            assert (await post(pool)).status == 200
            await asyncio.sleep(0.2)  # the server's FIN arrives
            assert (await post(pool)).status == 200  # on a new connection, not a failure
            assert server.connections == 2
            await pool.close()

    run(go())


def test_an_idle_connection_past_keepalive_is_not_reused() -> None:
    async def go() -> None:
        async with Server(keep_alive) as server:
            pool = pool_for(server, keepalive_s=0.1)
            await post(pool)
            await asyncio.sleep(0.3)
            await post(pool)
            assert server.connections == 2
            await pool.close()

    run(go())


def test_the_pool_never_opens_more_than_its_limit() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(reply())
            await writer.drain()

    async def go() -> None:
        async with Server(slow) as server:
            pool = pool_for(server, limit=3)
            got = await asyncio.gather(*(post(pool) for _ in range(20)))
            assert [g.status for g in got] == [200] * 20
            assert server.peak_open <= 3 and server.connections == 3
            await pool.close()

    run(go())


def test_no_connection_is_a_connect_failure() -> None:
    async def go() -> None:
        async with Server(keep_alive) as server:
            port = server.port
        pool = HttpPool("http", "127.0.0.1", port, limit=2, keepalive_s=1, connect_timeout_s=2)
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await post(pool)
        assert pool.open_connections == 0

    run(go())


def test_a_reply_cut_short_fails_and_frees_its_slot() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async def go() -> None:
        async with Server(cut) as server:
            pool = pool_for(server, limit=1)
            for _ in range(2):  # the one slot is free again after a failure
                with pytest.raises((HttpError, OSError)):
                    await post(pool)
            assert pool.open_connections == 0
            await pool.close()

    run(go())


def test_garbage_is_an_http_error() -> None:
    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def go() -> None:
        async with Server(junk) as server:
            pool = pool_for(server)
            with pytest.raises(HttpError, match="unreadable HTTP reply"):
                await post(pool)
            await pool.close()

    run(go())


def test_a_cancelled_exchange_closes_its_connection() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        await asyncio.wait_for(reader.read(1), 30)  # never answers; ends when the client closes

    async def go() -> None:
        async with Server(never) as server:
            pool = pool_for(server, limit=1)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(post(pool), 0.2)
            assert pool.open_connections == 0
            await asyncio.sleep(0.1)
            assert server.open == 0  # closed, not returned to the pool
            await pool.close()

    run(go())


def test_a_cancelled_waiter_does_not_take_a_slot() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.2)
            writer.write(reply())
            await writer.drain()

    async def go() -> None:
        async with Server(slow) as server:
            pool = pool_for(server, limit=1)
            first = asyncio.ensure_future(post(pool))
            await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError):  # waits for the one connection, gives up
                await asyncio.wait_for(post(pool), 0.05)
            assert (await first).status == 200
            assert (await post(pool)).status == 200  # the slot was not lost
            assert server.connections == 1
            await pool.close()

    run(go())


def test_close_closes_every_connection_and_refuses_more() -> None:
    async def go() -> None:
        async with Server(keep_alive) as server:
            pool = pool_for(server)
            await asyncio.gather(*(post(pool) for _ in range(3)))
            await pool.close()
            await asyncio.sleep(0.1)
            assert server.open == 0 and pool.open_connections == 0
            with pytest.raises(HttpError, match="closed"):
                await post(pool)

    run(go())


def test_a_line_break_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        request_head("POST", "/f", "h", {"X-A": "1\r\nX-Injected: 2"}, 0)
    with pytest.raises(ValueError, match="line break"):
        request_head("POST", "/f\n", "h", {}, 0)


def test_every_address_of_the_host_is_tried() -> None:
    # GIVEN a server on IPv4 only, named by a host name that may resolve to ::1 first
    async def go() -> None:
        async with Server(keep_alive) as server:
            pool = HttpPool(
                "http", "localhost", server.port, limit=1, keepalive_s=1, connect_timeout_s=5
            )
            loop = asyncio.get_running_loop()
            real = loop.getaddrinfo

            async def v6_first(*args: Any, **kw: Any) -> Any:  # ::1 first, where nothing listens
                import socket

                v4 = await real(*args, **kw)
                ipv6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", server.port, 0, 0))
                return [ipv6, *v4]

            loop.getaddrinfo = v6_first  # type: ignore[method-assign]
            try:
                assert (await post(pool)).status == 200
            finally:
                loop.getaddrinfo = real  # type: ignore[method-assign]
            await pool.close()

    run(go())
