"""One background asyncio loop for a network client, and total deadlines on its exchanges.

The cloud clients (the ``lambda`` target's Invoke dispatch through
:mod:`serverless_hpc.httppool`, the OpenWhisk REST client through :mod:`aiohttp`) talk HTTP
on a loop that runs in its own daemon thread, so that:

* a fan-out of a thousand requests is a thousand coroutines, not a thousand threads, and
  the driver's CPU per invocation stays small (``benchmarks/fanout.py`` measures it);
* every exchange runs under **one** deadline for all of it (connect, send, every byte of
  the reply): a cancellation at the deadline, which a server that drips one byte every few
  seconds cannot defeat the way it defeats per-read socket timeouts;
* the caller's thread waits on a future, which a signal (Ctrl-C, SIGTERM) interrupts at
  once; the exchange is then cancelled, so nothing keeps running on its behalf.

A request is provably unsent when no connection could be made, or when the connection it
opened failed before the peer's TCP acknowledged any byte sent on it
(:func:`never_acknowledged`: a connection a server with a full listen backlog never
accepted).

Blocking callers use :meth:`LoopThread.run`; the loop is started on first use and stopped
by :meth:`LoopThread.close`. :func:`drain` runs a fan-out with as many tasks as may be in
flight, backoffs outside them, each request's deadline and times kept by one
:class:`Attempts` (the same for every platform). This module imports nothing from the
project.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import logging
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long :meth:`LoopThread.run` waits past a call's own deadline before it gives up on
#: the loop itself (a deadline enforced inside the loop ends the call well before that).
GRACE_S: Final = 5.0
#: How long :meth:`LoopThread.close` waits for the cancelled work and the thread to end.
CLOSE_WAIT_S: Final = 5.0


class DeadlineExceeded(TimeoutError):
    """A network exchange did not complete within its total deadline."""


class LoopThread:
    """An event loop in a daemon thread; thread-safe; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closers: list[Callable[[], Awaitable[Any]]] = []

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (nothing runs on the loop any more)."""
        return self._closed

    def at_close(self, closer: Callable[[], Awaitable[Any]]) -> None:
        """Have :meth:`close` await ``closer()`` first (a connection pool's ``close``)."""
        self._closers.append(closer)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started on first use)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: the network loop is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name=self.name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the caller owns the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result, from any other thread.

        ``timeout_s`` is a backstop only (plus :data:`GRACE_S`): the coroutine is expected to
        bound itself (:func:`within`). An interrupt of the waiting thread (Ctrl-C, a signal
        handler raising) cancels the coroutine before it propagates.
        """
        fut = self.submit(coro)
        try:
            return fut.result(None if timeout_s is None else timeout_s + GRACE_S)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise DeadlineExceeded(f"{self.name}: no result within {timeout_s:g} s") from None
        except BaseException:
            fut.cancel()
            raise

    def close(self) -> None:
        """Cancel whatever still runs on the loop, stop it and join its thread."""
        with self._lock:
            loop, thread, self._closed = self._loop, self._thread, True
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            for closer in self._closers:
                try:
                    await closer()
                except Exception:  # one pool that fails to close must not keep the rest
                    log.exception("%s: closing a connection pool", self.name)
            self._closers.clear()
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(CLOSE_WAIT_S)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.warning("%s: work still pending at close: %s", self.name, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_WAIT_S)
        if thread.is_alive():
            log.warning("%s: the network loop did not stop within %g s", self.name, CLOSE_WAIT_S)
        else:
            loop.close()


async def within(coro: Coroutine[Any, Any, T], deadline_s: float, what: str) -> T:
    """``coro``'s result, or :class:`DeadlineExceeded` naming ``what`` after ``deadline_s``.

    The one deadline covers everything the coroutine awaits: connecting, sending, and
    reading every byte of the reply.
    """
    limit = asyncio.timeout(max(deadline_s, 0.0))
    try:
        async with limit:
            return await coro
    except TimeoutError:
        if not limit.expired():
            raise  # a timeout of the exchange's own, not the deadline
        raise DeadlineExceeded(f"{what}: no complete answer within {deadline_s:g} s") from None


class Attempts:
    """One request of a fan-out across its attempts: its deadline, its counts, its times.

    The deadline (``timeout_s``) starts at the first send (:meth:`sending`), not when the
    request is queued: a request waiting behind the in-flight limit has not started its
    timeout. ``client_ms`` runs from that first send to the answer, backoffs included.
    ``attempt`` counts the sends that failed in a way that may be re-sent, ``throttled`` the
    platform's refusals among them and ``retries`` the re-sends. A platform's fan-out adds
    what it carries (the request, the outcome) in a subclass.
    """

    __slots__ = ("_clock", "attempt", "index", "retries", "start", "t0", "t_send", "throttled",
                 "timeout_s")  # fmt: skip

    def __init__(
        self, index: int, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.index, self.timeout_s, self._clock = index, timeout_s, clock
        self.start: float | None = None  # ``clock`` at the first send
        self.t_send: float | None = None  # unix time of the first send
        self.t0 = 0.0  # ``perf_counter`` at the first send
        self.attempt = self.throttled = self.retries = 0

    def sending(self) -> None:
        """Note the first send: the deadline, ``t_send`` and ``client_ms`` start there."""
        if self.start is None:
            self.start = self._clock()
            self.t_send, self.t0 = time.time(), time.perf_counter()

    def left(self) -> float:
        """Seconds left of the deadline (all of it before the first send)."""
        if self.start is None:
            return self.timeout_s
        return self.start + self.timeout_s - self._clock()

    def times(self) -> tuple[float, float, float]:
        """``(client_ms, t_send, t_recv)`` now that the answer is in (0 ms, and ``t_send``
        the answer's time, for a request never sent)."""
        t_recv = time.time()
        if self.t_send is None:
            return 0.0, t_recv, t_recv
        return (time.perf_counter() - self.t0) * 1e3, self.t_send, t_recv


#: The young generation's collection threshold while a fan-out runs (see :func:`drain`).
FANOUT_GC_THRESHOLD: Final = 100_000


class _Collector:
    """The process's collector thresholds while fan-outs run (see :func:`fanout_collector`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: tuple[int, int, int] | None = None

    def enter(self) -> None:
        with self._lock:
            if self._active == 0:
                saved = gc.get_threshold()
                self._saved = saved
                if saved[0] > 0:  # 0: collection is off; leave it off
                    gc.set_threshold(max(FANOUT_GC_THRESHOLD, saved[0]), saved[1], saved[2])
            self._active += 1

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._saved is not None:
                gc.set_threshold(*self._saved)
                self._saved = None


_COLLECTOR: Final = _Collector()


@contextlib.contextmanager
def fanout_collector() -> Iterator[None]:
    """Collect the youngest generation every :data:`FANOUT_GC_THRESHOLD` net allocations,
    not every 700, while the block runs (nested and concurrent blocks share one setting; the
    last to end restores the thresholds).

    A 1,000-way fan-out keeps some 100 tracked objects per request alive (its coroutine,
    futures, request and response objects) until the request is answered; at the default
    threshold the collector traverses them, and promotes them to be traversed again, some
    120 times per batch: a third of the driver's CPU per invocation
    (``benchmarks/fanout.py``). They are acyclic and freed by reference counting when each
    request ends, so the extra collections free nothing; a cycle made meanwhile still
    waits at most that many allocations.
    """
    _COLLECTOR.enter()
    try:
        yield
    finally:
        _COLLECTOR.exit()


async def drain(
    jobs: Sequence[T], senders: int, attempt: Callable[[T], Awaitable[float | None]]
) -> None:
    """Run ``attempt`` on every job with ``min(len(jobs), senders)`` concurrent senders.

    ``attempt`` returns None when the job is done, else a delay in seconds after which the
    job is queued again (a backoff): meanwhile its sender takes the next job, so a backoff
    never holds a sender. The number of tasks is what may be in flight, not the number of
    jobs. Returns when every job is done; cancelling it cancels the senders. The collector
    runs rarely meanwhile (:func:`fanout_collector`).
    """
    if not jobs:
        return
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[T] = asyncio.Queue()
    for job in jobs:
        ready.put_nowait(job)
    left = len(jobs)
    done = asyncio.Event()

    async def sender() -> None:
        nonlocal left
        while True:
            job = await ready.get()
            delay = await attempt(job)
            if delay is None:
                left -= 1
                if left == 0:
                    done.set()
            else:
                loop.call_later(delay, ready.put_nowait, job)

    with fanout_collector():
        tasks = [asyncio.create_task(sender()) for _ in range(min(len(jobs), max(senders, 1)))]
        try:
            await done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


#: The sockets the running exchange opened (see :func:`tracked_socket`), per task.
_OPENED: contextvars.ContextVar[list[_Tracked] | None] = contextvars.ContextVar(
    "netloop_opened", default=None
)
#: ``struct tcp_info`` offset (Linux) of ``tcpi_bytes_acked`` (u64; the SYN counts as one).
_TCPI_BYTES_ACKED: Final = 120
#: A connection whose sent bytes stay unacknowledged this long is aborted by the kernel
#: (``TCP_USER_TIMEOUT``): a peer that is up acknowledges within a fraction of a second,
#: so the bytes were dropped, never delivered (see :func:`never_acknowledged`).
UNACKED_TIMEOUT_S: Final = 5.0


def _acked_bytes(sock: socket.socket) -> int | None:
    """Bytes the peer acknowledged on ``sock`` (Linux ``TCP_INFO``); None where unknown."""
    if not hasattr(socket, "TCP_INFO") or sock.fileno() < 0:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 128)
    except OSError:
        return None
    if len(info) < _TCPI_BYTES_ACKED + 8:
        return None
    return int(struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0])


class _Tracked(socket.socket):
    """A socket that notes, as it closes, how many bytes the peer acknowledged on it."""

    acked_at_close: int | None = None

    def close(self) -> None:
        if self.fileno() >= 0 and self.acked_at_close is None:
            self.acked_at_close = _acked_bytes(self)
        super().close()

    def acked(self) -> int | None:
        """Bytes acknowledged so far (or at close); None where it cannot be told."""
        return _acked_bytes(self) if self.fileno() >= 0 else self.acked_at_close


def tracked_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket factory (aiohttp's ``socket_factory``, and the sockets
    :mod:`serverless_hpc.httppool` connects): the socket aborts when its sent
    bytes stay unacknowledged for :data:`UNACKED_TIMEOUT_S`, and is noted for the running
    exchange (:func:`opened_sockets`)."""
    sock = _Tracked(family=addr_info[0], type=addr_info[1], proto=addr_info[2])
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_TIMEOUT_S * 1000))
    opened = _OPENED.get()
    if opened is not None:
        opened.append(sock)
    return sock


@contextlib.contextmanager
def opened_sockets() -> Iterator[list[_Tracked]]:
    """The sockets that :func:`tracked_socket` opens for this task while the block runs."""
    opened: list[_Tracked] = []
    token = _OPENED.set(opened)
    try:
        yield opened
    finally:
        _OPENED.reset(token)


def never_acknowledged(opened: Sequence[_Tracked]) -> bool:
    """Whether an exchange that failed on a connection it opened provably sent nothing.

    True when it opened a connection and the peer's TCP acknowledged none of the bytes
    sent on it: a peer's kernel acknowledges bytes as it receives them, before any program
    can read them, and a connection that failed (reset, or aborted after
    :data:`UNACKED_TIMEOUT_S` without an acknowledgement) delivers nothing more. This is
    how a server with a full listen backlog leaves a connection it never accepted. False
    for a reused pooled connection (nothing opened) and wherever it cannot be told.
    """
    if not opened:
        return False
    counts = [sock.acked() for sock in opened]
    return all(c is not None and c <= 1 for c in counts)


def close_sessions(
    loop: LoopThread, sessions: list[Any], *, what: str, close_loop: bool = False
) -> None:
    """Close a client's connection pools on ``loop`` (each within 5 s), then the loop itself
    when ``close_loop``; a pool that cannot be closed is said under ``what``, not raised
    (this runs from finalizers)."""
    for session in sessions:
        if loop.closed:
            break  # closed with the loop (LoopThread.at_close)
        try:
            loop.run(session.close(), timeout_s=5.0)
        except (RuntimeError, TimeoutError) as exc:
            log.warning("%s: closing a connection pool: %s", what, exc)
    sessions.clear()
    if close_loop:
        loop.close()
