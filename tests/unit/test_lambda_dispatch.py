"""The ``lambda`` target's fan-out against the Invoke endpoint double (HTTP on loopback).

The double (``tests/doubles/lambda_invoke.py``) is not Lambda: it answers the Invoke API
after a fixed delay, throttles a chosen share, and counts what was in flight at once.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from serverless_hpc import workloads
from serverless_hpc.targets.aws_lambda import LambdaTarget
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.lambda_dispatch import Dispatcher, Signer
from tests.doubles.lambda_invoke import DRIP, DROP, InvokeDouble

CREDS = Credentials("AKIDEXAMPLE", "secret-example", "token-example")


def request(i: int) -> dict[str, Any]:
    return {"workload": "classify", "params": {"start": i, "end": i + 1}, "shard": i}


def target_on(url: str, *, limit: int | None = None, **settings: Any) -> LambdaTarget:
    """A lambda target whose Invoke data plane is ``url`` (function names given: no stacks)."""
    extra = {f"function.{w}": f"fn-{w}" for w in workloads.names()}
    extra["architecture"] = "x86_64"
    if limit is not None:
        extra["max_parallel"] = str(limit)
    return LambdaTarget(
        TargetSettings(extra=extra, **settings),
        lambda_client=mock.Mock(),  # the control plane is not used by natural batches
        dispatcher=Dispatcher(url, Signer(CREDS, "us-east-1"), limit=limit or 1000),
    )


@pytest.fixture
def double() -> Iterator[InvokeDouble]:
    with InvokeDouble(delay_s=0.2, keep_bodies=True) as d:
        yield d


def test_signer_agrees_with_botocore() -> None:
    # GIVEN one request (an ARN as function name: quoted in the path) at one instant
    when = datetime.datetime(2026, 12, 2, 11, 0, 0, tzinfo=datetime.UTC)
    url = (
        "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/"
        "arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Afn/invocations?Qualifier=live"
    )
    body = b'{"workload": "classify"}'
    headers = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"}
    # WHEN botocore's SigV4 and the template signer sign it
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        ref = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(CREDS, "lambda", "us-east-1").add_auth(ref)
    mine = Signer(CREDS, "us-east-1", now=lambda: when).headers("POST", url, body, headers)
    # THEN the signatures are the same
    assert mine["Authorization"] == ref.headers["Authorization"]
    assert mine["X-Amz-Security-Token"] == "token-example"


def test_signer_reusing_its_templates_on_its_own_clock_agrees_with_botocore() -> None:
    # GIVEN one signer on its own clock, two functions' URLs, and instants a second and a
    # day apart (a new timestamp, a new day's signing key)
    signer = Signer(CREDS, "us-east-1")
    base = "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/"
    one, two = base + "fn-a/invocations", base + "fn%3Ab/invocations?Qualifier=live"
    headers = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"}
    late = datetime.datetime(2026, 12, 2, 23, 59, 59, tzinfo=datetime.UTC)
    steps = [
        (one, late),
        (two, late),
        (one, late),
        (one, late + datetime.timedelta(seconds=1)),
        (two, late + datetime.timedelta(seconds=1)),
    ]
    for url, when in steps:
        body = json.dumps({"url": url, "at": when.isoformat()}).encode()
        # WHEN botocore and the signer (its templates and timestamp reused) sign it
        with (
            mock.patch(
                "botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)
            ),
            mock.patch("time.time", return_value=when.timestamp()),
        ):
            ref = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
            SigV4Auth(CREDS, "lambda", "us-east-1").add_auth(ref)
            mine = signer.headers("POST", url, body, headers)
        # THEN every signature is botocore's
        assert mine["Authorization"] == ref.headers["Authorization"], (url, when)
        assert mine["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")


def test_a_fan_out_is_in_flight_at_once_up_to_the_limit(double: InvokeDouble) -> None:
    # GIVEN a 200 ms function and an in-flight limit of 20
    target = target_on(double.url, limit=20)
    try:
        # WHEN 100 requests go out as one batch
        t0 = time.monotonic()
        timed = target.invoke_batch([request(i) for i in range(100)], timeout_s=30)
        wall = time.monotonic() - t0
    finally:
        target.close()
    # THEN all succeed, in order, never more than 20 at once, in five waves of 200 ms
    assert [t.outcome.ok for t in timed] == [True] * 100
    assert double.stats.peak_in_flight == 20
    assert 0.95 < wall < 5.0
    shards = [b["shard"] for b in double.stats.bodies]
    assert sorted(shards) == list(range(100))
    assert all(t.client_ms >= 190 for t in timed)
    assert all(t.t_send <= t.t_recv for t in timed)


def test_default_limit_is_the_accounts_concurrency_and_is_recorded() -> None:
    # GIVEN an account with 1,000 concurrent executions, 40 of them unreserved
    with InvokeDouble(delay_s=0.1, concurrent_executions=1000, unreserved=40) as double:
        target = target_on(double.url)
        try:
            # WHEN nothing sets the limit THEN it is the unreserved concurrency, said where from
            assert target.max_parallel == 40
            described = target.describe()
            assert described["max_parallel"] == 40
            assert "UnreservedConcurrentExecutions" in described["max_parallel_source"]
            assert described["account_limits"]["ConcurrentExecutions"] == 1000
            target.invoke_batch([request(i) for i in range(100)], timeout_s=30)
        finally:
            target.close()
        # AND a 100-way batch holds 40 in flight
        assert double.stats.peak_in_flight == 40


def test_concurrency_option_sets_the_limit() -> None:
    target = target_on("http://127.0.0.1:9", concurrency=7)
    assert target.max_parallel == 7
    assert target.describe()["max_parallel_source"] == "--concurrency"
    target.close()


def test_throttles_are_retried_counted_and_every_invocation_succeeds() -> None:
    # GIVEN an endpoint that throttles every other request
    with InvokeDouble(delay_s=0.05, throttle_share=0.5) as double:
        target = target_on(double.url, limit=50)
        try:
            timed = target.invoke_batch([request(i) for i in range(50)], timeout_s=60)
        finally:
            target.close()
    # THEN every invocation succeeds and the 429s are counted per invocation
    assert all(t.outcome.ok for t in timed)
    assert sum(t.outcome.throttled for t in timed) == double.stats.throttled >= 10
    assert all(t.outcome.retries == t.outcome.throttled for t in timed)


def test_a_backoff_does_not_hold_an_in_flight_slot() -> None:
    # GIVEN one slot and an endpoint that throttles the first request only
    answered: list[int] = []

    def respond(name: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
        answered.append(payload["shard"])
        if len(answered) == 1:
            err = {"Type": "User", "message": "Rate Exceeded."}
            return 429, {"x-amzn-ErrorType": "TooManyRequestsException"}, json.dumps(err).encode()
        ok = {
            "ok": True,
            "workload": "classify",
            "result": {},
            "timings": {"load_ms": 0, "compute_ms": 1},
            "cold_start": False,
            "runtime": {},
        }
        return 200, {}, json.dumps(ok).encode()

    with InvokeDouble(delay_s=0.01, respond=respond) as double:
        target = LambdaTarget(
            TargetSettings(
                extra={
                    **{f"function.{w}": f"fn-{w}" for w in workloads.names()},
                    "architecture": "x86_64",
                    "max_parallel": "1",
                }
            ),
            lambda_client=mock.Mock(),
            dispatcher=Dispatcher(double.url, Signer(CREDS, "us-east-1"), limit=1),
            rng=lambda: 1.0,  # a 0.25 s backoff
        )
        try:
            timed = target.invoke_batch([request(0), request(1)], timeout_s=30)
        finally:
            target.close()
    # THEN the second request went out while the first backed off
    assert answered == [0, 1, 0]
    assert [t.outcome.ok for t in timed] == [True, True]
    assert (timed[0].outcome.throttled, timed[1].outcome.throttled) == (1, 0)


def test_a_request_that_never_connected_is_resent_until_the_deadline() -> None:
    # GIVEN an endpoint where nothing listens (connection refused: nothing was sent)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = target_on(f"http://127.0.0.1:{port}", limit=1)
    try:
        t0 = time.monotonic()
        out = target.invoke(request(0), timeout_s=1.5)
        wall = time.monotonic() - t0
    finally:
        target.close()
    # THEN it was re-sent with backoff, then failed by the deadline, saying why
    assert out.response["error"]["type"] == "PlatformError"
    assert "cannot connect" in out.response["error"]["message"]
    assert out.retries >= 1 and out.throttled == 0
    assert wall < 2.5


def test_a_request_that_may_have_reached_the_platform_is_never_resent() -> None:
    # GIVEN an endpoint that reads the request and drops the connection without an answer
    with InvokeDouble(delay_s=0.0, respond=lambda n, p: (DROP, {}, b"")) as double:
        target = target_on(double.url, limit=1)
        try:
            out = target.invoke(request(0), timeout_s=10)
        finally:
            target.close()
        # THEN it failed once: an invocation that may have run is not run again
        assert out.response["error"]["type"] == "PlatformError"
        assert out.retries == 0
        assert double.stats.requests == 1


def test_one_deadline_covers_a_reply_sent_one_byte_every_3_s() -> None:
    # GIVEN an endpoint that drips its reply one byte every 3 s (each read gets a byte)
    body = json.dumps({"ok": True, "padding": "x" * 50}).encode()
    with InvokeDouble(delay_s=0.0, respond=lambda n, p: (DRIP, {}, body), drip_s=3.0) as double:
        target = target_on(double.url, limit=1)
        try:
            # WHEN invoked with a 4 s timeout
            t0 = time.monotonic()
            out = target.invoke(request(0), timeout_s=4.0)
            wall = time.monotonic() - t0
        finally:
            target.close()
    # THEN it ends at the deadline, as a timeout
    assert out.response["error"]["type"] == "Timeout"
    assert 3.9 < wall < 5.5


def test_a_request_queued_behind_the_limit_has_its_whole_timeout() -> None:
    # GIVEN a 1 s function, one slot, and three requests with a 1.8 s timeout each
    with InvokeDouble(delay_s=1.0) as double:
        target = target_on(double.url, limit=1)
        try:
            # WHEN they go out as one batch (the last is sent 2 s after the first)
            timed = target.invoke_batch([request(i) for i in range(3)], timeout_s=1.8)
        finally:
            target.close()
    # THEN none timed out: each deadline starts when its request is sent
    assert [t.outcome.ok for t in timed] == [True, True, True]
    assert timed[2].t_send - timed[0].t_send > 1.9


def test_an_arn_is_sent_with_the_path_it_was_signed_for() -> None:
    """A function named by ARN: its ':' go on the wire as '%3A', the path botocore signs."""
    lines: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def answer_once() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            lines.append(head.split(b"\r\n", 1)[0])
            body = b'{"ok": true}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn-classify"
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    dispatcher = Dispatcher(url, Signer(CREDS, "us-east-1"), limit=1)
    try:
        # WHEN the function is invoked by its ARN
        reply = dispatcher.loop.run(dispatcher.invoke(arn, b"{}", deadline_s=10), timeout_s=10)
    finally:
        dispatcher.close()
        thread.join(timeout=10)
        server.close()
    # THEN the request line carries the escaped path, and botocore signs that same path
    assert reply.status == 200
    escaped = (
        "/2015-03-31/functions/"
        "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afn-classify/invocations"
    )
    assert lines == [f"POST {escaped} HTTP/1.1".encode()]
    ref = AWSRequest(method="POST", url=url + escaped, data=b"{}")
    assert SigV4Auth(CREDS, "lambda", "us-east-1").canonical_request(ref).split("\n")[1] == (
        escaped.replace("%", "%25")
    )
