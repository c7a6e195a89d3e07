"""TEST DOUBLE of AWS Lambda's Invoke endpoint, loopback only. This is not Lambda.

A small aiohttp server on 127.0.0.1 that speaks the part of the Lambda API the ``lambda``
target sends to its data plane, as the API reference documents it:

* ``POST /2015-03-31/functions/{name}/invocations`` (RequestResponse, ``LogType: Tail``):
  answers after ``delay_s`` with the function's payload, ``X-Amz-Log-Result`` (base64 of a
  log tail ending in a ``REPORT`` line, with ``Init Duration`` on a cold start) and
  ``X-Amz-Executed-Version``; each request is answered at once with 429
  ``TooManyRequestsException`` with probability ``throttle_share`` (a seeded draw);
* ``GET /2016-08-19/account-settings`` (``GetAccountSettings``): the account's concurrency
  limits (``AccountLimit.ConcurrentExecutions``, ``UnreservedConcurrentExecutions``).

It holds thousands of requests at once (one coroutine each, listen backlog 4096) and counts
what a dispatch benchmark needs: requests, throttled answers and the **peak** number of
Invoke requests in flight. Warm/cold is modelled per function: a request finds an idle
execution environment (warm) or starts a new one (cold). Requests must carry a SigV4
``Authorization`` header (403 otherwise); the signature itself is not verified.

``respond`` replaces the default answer for tests that script one: it receives the function
name and the decoded payload and returns ``(status, headers, body bytes)``; a ``delay_s``
still applies. :data:`DRIP` makes the server send its answer one byte every ``drip_s``
seconds (a slow-drip server, for total-deadline tests).

Run standalone for a benchmark (its own process, so its CPU is not the driver's)::

    python -m tests.doubles.lambda_invoke --delay 0.2 --throttle 0.0

prints ``PORT <n>`` once listening; ``GET /_double/stats`` and ``POST /_double/reset`` read
and reset the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
SETTINGS_PATH = "/2016-08-19/account-settings"
#: ``respond`` may return this status to make the server drip its body (see module docstring).
DRIP = -1
#: ``respond`` may return this status to make the server drop the connection without answering
#: (after it read the request: the request reached the platform).
DROP = -2

Responder = Callable[[str, Any], tuple[int, dict[str, str], bytes]]


def success_payload(workload: str, *, cold: bool, compute_ms: float) -> dict[str, Any]:
    """A contract success envelope like the deployed adapter's."""
    return {
        "ok": True,
        "workload": workload,
        "result": {},
        "timings": {"load_ms": 0.0, "compute_ms": compute_ms},
        "cold_start": cold,
        "runtime": {"platform": "lambda", "memory_mb": 1024},
    }


def log_tail(duration_ms: float, *, cold: bool, memory_mb: int = 1024) -> str:
    """Base64 of a log tail whose last line is the platform's REPORT line."""
    init = "\tInit Duration: 250.00 ms" if cold else ""
    billed = math.ceil(duration_ms)
    line = (
        f"REPORT RequestId: {uuid.uuid4()}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: 80 MB{init}\t\n"
    )
    return base64.b64encode(("START\nEND\n" + line).encode()).decode()


@dataclass
class Stats:
    """What the double counted since the last reset."""

    requests: int = 0
    throttled: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    bodies: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
        }


class InvokeDouble:
    """The double; use as a context manager (serves from a thread) or :meth:`serve_forever`."""

    def __init__(
        self,
        *,
        delay_s: float = 0.2,
        throttle_share: float = 0.0,
        concurrent_executions: int = 1000,
        unreserved: int | None = None,
        respond: Responder | None = None,
        drip_s: float = 3.0,
        keep_bodies: bool = False,
    ) -> None:
        if not 0.0 <= throttle_share < 1.0:
            raise ValueError("throttle_share must be in [0, 1)")
        self.delay_s = delay_s
        self.throttle_share = throttle_share
        self.concurrent_executions = concurrent_executions
        self.unreserved = concurrent_executions if unreserved is None else unreserved
        self.respond = respond
        self.drip_s = drip_s
        self.keep_bodies = keep_bodies
        self.stats = Stats()
        self._idle: dict[str, int] = {}
        self._draw = random.Random(0)  # seeded: a run throttles the same requests
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3 (``endpoint_url``) or the target."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Zero the counters (and forget warm environments)."""
        self.stats = Stats()
        self._idle.clear()
        self._draw = random.Random(0)

    # -- handlers ---------------------------------------------------------------------
    def _throttle_next(self) -> bool:
        """Whether the next request is throttled: with probability ``throttle_share``."""
        return self._draw.random() < self.throttle_share

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
            return web.json_response({"message": "Missing Authentication Token"}, status=403)
        name = request.match_info["name"]
        raw = await request.read()
        self.stats.requests += 1
        try:
            payload: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = None
        if self.keep_bodies:
            self.stats.bodies.append(payload)
        if self._throttle_next():
            self.stats.throttled += 1
            return web.json_response(
                {
                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                    "Type": "User",
                    "message": "Rate Exceeded.",
                },
                status=429,
                headers={"x-amzn-ErrorType": "TooManyRequestsException"},
            )
        self.stats.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        cold = self._idle.get(name, 0) == 0
        if not cold:
            self._idle[name] -= 1
        try:
            await asyncio.sleep(self.delay_s)
            if self.respond is not None:
                status, headers, body = self.respond(name, payload)
            else:
                workload = payload.get("workload", "") if isinstance(payload, dict) else ""
                ms = self.delay_s * 1e3
                status, body = 200, json.dumps(success_payload(workload, cold=cold, compute_ms=ms))
                headers = {"X-Amz-Log-Result": log_tail(ms, cold=cold)}
                body = body.encode()
            if status == DRIP:
                return await self._drip(request, body)
            if status == DROP:
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            headers = {"X-Amz-Executed-Version": "$LATEST", **headers}
            return web.Response(
                status=status, body=body, headers=headers, content_type="application/json"
            )
        finally:
            self.stats.in_flight -= 1
            self._idle[name] = self._idle.get(name, 0) + 1

    async def _drip(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Send ``body`` one byte every ``drip_s`` seconds (headers first)."""
        resp = web.StreamResponse(status=200, headers={"Content-Length": str(len(body))})
        await resp.prepare(request)
        for i in range(len(body)):
            await resp.write(body[i : i + 1])
            await asyncio.sleep(self.drip_s)
        await resp.write_eof()
        return resp

    async def _settings(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "AccountLimit": {
                    "ConcurrentExecutions": self.concurrent_executions,
                    "UnreservedConcurrentExecutions": self.unreserved,
                    "CodeSizeUnzipped": 262144000,
                    "CodeSizeZipped": 52428800,
                    "TotalCodeSize": 80530636800,
                },
                "AccountUsage": {"FunctionCount": 4, "TotalCodeSize": 0},
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(INVOKE_PATH, self._invoke)
        app.router.add_get(SETTINGS_PATH, self._settings)
        app.router.add_get(SETTINGS_PATH + "/", self._settings)
        app.router.add_get("/_double/stats", self._stats)
        app.router.add_post("/_double/reset", self._reset)
        return app

    async def start_async(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- running ----------------------------------------------------------------------
    def __enter__(self) -> InvokeDouble:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start_async())
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="invoke-double", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the Invoke double did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)


def main() -> None:
    """Serve standalone until killed; print ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per invocation")
    parser.add_argument("--throttle", type=float, default=0.0, help="share answered 429")
    parser.add_argument("--limit", type=int, default=1000, help="account concurrency")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    double = InvokeDouble(
        delay_s=args.delay, throttle_share=args.throttle, concurrent_executions=args.limit
    )

    async def serve() -> None:
        await double.start_async(args.port)
        sys.stdout.write(f"PORT {double.port}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
