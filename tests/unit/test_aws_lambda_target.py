"""The ``lambda`` target: control plane on botocore's ``Stubber``, Invoke on the HTTP double.

Stubber validates every control-plane request (configuration updates, waiters) against the
Lambda API model and returns the responses queued here, in order. Invocations go over HTTP
to the Invoke endpoint double (``tests/doubles/lambda_invoke.py``), which answers the ones
queued here, in order. Nothing reaches AWS. What neither emulates: Lambda itself (timing,
scaling, throttling decisions), so those arrive as the documented response/error shapes.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.stub import ANY, Stubber

from serverless_hpc import workloads
from serverless_hpc.retry import Backoff
from serverless_hpc.targets.aws_lambda import LambdaTarget
from serverless_hpc.targets.base import TargetSettings, TargetUnavailable
from serverless_hpc.targets.lambda_dispatch import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    Dispatcher,
    Signer,
)
from serverless_hpc.targets.lambda_reply import parse_report
from tests.doubles.clock import FakeClock
from tests.doubles.lambda_invoke import InvokeDouble

#: One function per workload spec, as the deployment's outputs name them.
FUNCTIONS = {w: f"fn-{w}" for w in workloads.names()}
REQUEST = {"workload": "classify", "params": {"start": 0, "end": 100}, "run_id": "r1", "shard": 0}


def report_line(*, duration: float, billed: int, memory: int, used: int, init: float | None) -> str:
    fields = [
        "REPORT RequestId: 6f1c-test",
        f"Duration: {duration} ms",
        f"Billed Duration: {billed} ms",
        f"Memory Size: {memory} MB",
        f"Max Memory Used: {used} MB",
    ]
    if init is not None:
        fields.append(f"Init Duration: {init} ms")
    return "\t".join(fields) + "\t"


def tail(report: str) -> str:
    text = f"START RequestId: 6f1c-test Version: $LATEST\nsome log line\nEND RequestId: 6f1c-test\n{report}\n"
    return base64.b64encode(text.encode()).decode()


Answer = tuple[int, dict[str, str], bytes]


class Planes:
    """The control plane on a Stubber, the data plane (Invoke) on the HTTP double.

    Invoke answers and errors queued here go to the double, the rest to the Stubber.
    """

    def __init__(self, stub: Stubber, double: InvokeDouble) -> None:
        self.stub = stub
        self.double = double
        self.answers: deque[Answer] = deque()
        double.respond = self.respond

    def respond(self, name: str, payload: object) -> Answer:
        assert name == "fn-classify", name
        return self.answers.popleft()

    def add_response(self, operation: str, response: Any, params: Any = None) -> None:
        self.stub.add_response(operation, response, params)

    def add_client_error(
        self, operation: str, *, service_error_code: str, http_status_code: int
    ) -> None:
        if operation != "invoke":
            self.stub.add_client_error(
                operation, service_error_code=service_error_code, http_status_code=http_status_code
            )
            return
        body = json.dumps({"Type": "User", "message": f"{service_error_code} here"}).encode()
        headers = {"x-amzn-ErrorType": f"{service_error_code}:http://internal.amazon.com/"}
        self.answers.append((http_status_code, headers, body))

    def assert_no_pending_responses(self) -> None:
        self.stub.assert_no_pending_responses()
        assert not self.answers, f"{len(self.answers)} Invoke answers never asked for"


#: The double of the running test (make_target points the data plane at it).
_DOUBLE: dict[str, InvokeDouble] = {}


def dispatcher_for(double: InvokeDouble, limit: int = 1000) -> Dispatcher:
    signer = Signer(Credentials("testing", "testing"), "us-east-1")
    return Dispatcher(double.url, signer, limit=limit)


def success(cold: bool = True) -> dict[str, Any]:
    timings = {"load_ms": 40.0, "compute_ms": 90.0, "handler_ms": 131.0, "stage_ms": 55.0}
    if cold:
        timings["preload_ms"] = 120.0
    return {
        "ok": True,
        "workload": "classify",
        "result": {"n": 100, "correct": 91},
        "timings": timings,
        "cold_start": cold,
        "runtime": {
            "platform": "lambda",
            "memory_mb": 2048,
            "pid": 8,
            "s3_requests": {"get": 4, "put": 0},
        },
    }


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Planes]]:
    """A real boto3 Lambda client wrapped in a Stubber, and the Invoke double (test doubles
    for the Lambda service's control and data planes)."""
    client = boto3.client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with InvokeDouble(delay_s=0.0) as double, Stubber(client) as stub:
        planes = Planes(stub, double)
        _DOUBLE["now"] = double
        yield client, planes
        planes.assert_no_pending_responses()
        del _DOUBLE["now"]


def make_target(
    client: Any, clock: FakeClock | None = None, tmp: Path | None = None
) -> LambdaTarget:
    clock = clock or FakeClock(now=1000.0)
    extra = {f"function.{w}": n for w, n in FUNCTIONS.items()} | {"architecture": "x86_64"}
    target = LambdaTarget(
        TargetSettings(extra=extra, log_dir=tmp),
        lambda_client=client,
        dispatcher=dispatcher_for(_DOUBLE["now"]),
        sleep=clock.sleep,
        clock=clock,
        rng=lambda: 1.0,
    )
    target.open()
    return target


def queue_invoke(
    stub: Planes, report: str, payload: object, *, function_error: str | None = None
) -> None:
    """Queue one ``Invoke`` answer for fn-classify: ``report`` in the log tail, ``payload``."""
    headers = {"X-Amz-Log-Result": tail(report)}
    if function_error is not None:
        headers["X-Amz-Function-Error"] = function_error
    stub.answers.append((200, headers, json.dumps(payload).encode()))


def queue_update(stub: Planes | Stubber, status: str = "Successful") -> None:
    """Queue a configuration update of fn-classify that ends in ``LastUpdateStatus`` ``status``."""
    stub.add_response("get_function_configuration", {}, {"FunctionName": "fn-classify"})
    stub.add_response(
        "update_function_configuration", {}, {"FunctionName": "fn-classify", "Environment": ANY}
    )
    stub.add_response(
        "get_function",
        {"Configuration": {"LastUpdateStatus": status}},
        {"FunctionName": "fn-classify"},
    )


def test_parse_report_reads_every_field() -> None:
    text = "x\n" + report_line(duration=12.5, billed=180, memory=2048, used=130, init=167.05)
    rep = parse_report(text)
    assert rep is not None
    assert (rep.duration_ms, rep.billed_ms, rep.memory_mb, rep.max_memory_mb, rep.init_ms) == (
        12.5,
        180.0,
        2048,
        130.0,
        167.05,
    )
    warm = parse_report(report_line(duration=3.0, billed=3, memory=128, used=60, init=None))
    assert warm is not None and warm.init_ms is None
    assert parse_report("no report here") is None


def test_cold_invocation_uses_the_platform_report(
    stubbed: tuple[Any, Planes], tmp_path: Path
) -> None:
    client, stub = stubbed
    # GIVEN a cold invocation whose REPORT line carries Init Duration
    rep = report_line(duration=180.2, billed=348, memory=2048, used=130, init=167.05)
    queue_invoke(stub, rep, success(cold=True))
    target = make_target(client, tmp=tmp_path)
    # WHEN it is invoked
    out = target.invoke(REQUEST, timeout_s=60)
    # THEN cold start, durations and billing come from the REPORT line
    assert out.ok and out.cold
    assert out.init_ms == 167.05
    assert out.duration_ms == 180.2
    assert out.billed_ms == 348
    assert out.memory_mb == 2048
    assert out.max_rss_mb == 130
    # INIT split from the handler's own phases
    assert out.breakdown["import_ms"] == 120.0
    assert out.breakdown["process_start_ms"] == pytest.approx(47.05)
    assert out.breakdown["load_ms"] == 40.0
    assert out.breakdown["first_call_ms"] == 90.0
    # cost: billed GB-s (INIT included in Billed Duration) + request + the S3 GETs it counted
    p = target.prices
    expected = (
        0.348 * 2.0 * p.lambda_.gb_second["x86_64"] + p.lambda_.request + 4 * p.s3.get_request
    )
    assert out.cost_usd == pytest.approx(expected)
    target.close()
    ledger = json.loads((tmp_path / "lambda-cost-ledger.json").read_text())
    assert ledger["total_usd"] == pytest.approx(expected)


def test_warm_invocation_has_no_init(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    rep = report_line(duration=95.0, billed=95, memory=2048, used=131, init=None)
    queue_invoke(stub, rep, success(cold=False))
    out = make_target(client).invoke(REQUEST, timeout_s=60)
    assert out.ok and not out.cold
    assert out.init_ms is None and out.breakdown == {}
    assert out.billed_ms == 95


def test_function_error_is_a_failed_invocation_and_still_billed(
    stubbed: tuple[Any, Planes],
) -> None:
    client, stub = stubbed
    rep = report_line(duration=60000.0, billed=60000, memory=2048, used=300, init=None)
    payload = {
        "errorMessage": "2026-01-01T00:00:00Z 6f1c Task timed out after 60.00 seconds",
        "errorType": "Sandbox.Timedout",
    }
    queue_invoke(stub, rep, payload, function_error="Unhandled")
    unhandled = {"errorMessage": "boom", "errorType": "Runtime.ExitError"}
    queue_invoke(stub, rep, unhandled, function_error="Unhandled")
    target = make_target(client)
    timed_out = target.invoke(REQUEST, timeout_s=60)
    assert not timed_out.ok
    assert timed_out.response["error"]["type"] == "Timeout"
    assert timed_out.cost_usd is not None and timed_out.cost_usd > 0
    crashed = target.invoke(REQUEST, timeout_s=60)
    assert crashed.response == {
        "ok": False,
        "error": {"type": "PlatformError", "message": "function error: Runtime.ExitError: boom"},
    }


def test_out_of_memory_is_recognised(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    rep = report_line(duration=900.0, billed=900, memory=2048, used=2048, init=None)
    err = {
        "errorMessage": "Runtime exited with error: signal: killed",
        "errorType": "Runtime.ExitError",
    }
    queue_invoke(stub, rep, err, function_error="Unhandled")
    out = make_target(client).invoke(REQUEST, timeout_s=60)
    assert out.response["error"]["type"] == "OutOfMemory"


def test_malformed_payload_is_a_platform_error(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    rep = report_line(duration=5.0, billed=5, memory=2048, used=100, init=None)
    queue_invoke(stub, rep, {"answer": 42})
    out = make_target(client).invoke(REQUEST, timeout_s=60)
    assert out.response["error"]["type"] == "PlatformError"
    assert "malformed" in out.response["error"]["message"]


def test_throttling_is_retried_with_backoff_then_succeeds(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    clock = FakeClock(now=1000.0)
    for _ in range(2):
        stub.add_client_error(
            "invoke", service_error_code="TooManyRequestsException", http_status_code=429
        )
    rep = report_line(duration=95.0, billed=95, memory=2048, used=131, init=None)
    queue_invoke(stub, rep, success(cold=False))
    out = make_target(client, clock).invoke(REQUEST, timeout_s=60)
    assert out.ok
    assert clock.sleeps == [0.25, 0.5]  # exponential (rng pinned to the top of the jitter range)
    assert (out.throttled, out.retries) == (2, 2)  # counted in the outcome (and the record)


def test_throttling_past_the_deadline_is_throttled(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    clock = FakeClock(now=1000.0)
    for _ in range(3):
        stub.add_client_error(
            "invoke", service_error_code="TooManyRequestsException", http_status_code=429
        )
    out = make_target(client, clock).invoke(REQUEST, timeout_s=1.0)
    assert out.response["error"]["type"] == "Throttled"
    assert "deadline" in out.response["error"]["message"]
    assert (out.throttled, out.retries) == (3, 2)
    assert sum(clock.sleeps) < 1.0  # never slept past the deadline


def test_non_retryable_client_error_is_reported(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    stub.add_client_error(
        "invoke", service_error_code="ResourceNotFoundException", http_status_code=404
    )
    out = make_target(client).invoke(REQUEST, timeout_s=60)
    assert out.response["error"]["type"] == "PlatformError"
    assert "ResourceNotFoundException" in out.response["error"]["message"]


def test_forced_cold_updates_configuration_and_waits(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    stub.add_response(
        "get_function_configuration",
        {"Environment": {"Variables": {"SHPC_WORKLOAD": "classify"}}},
        {"FunctionName": "fn-classify"},
    )
    stub.add_response(
        "update_function_configuration",
        {"LastUpdateStatus": "InProgress"},
        {
            "FunctionName": "fn-classify",
            "Environment": {"Variables": {"SHPC_WORKLOAD": "classify", "SHPC_COLD_TOKEN": ANY}},
        },
    )
    # the function_updated_v2 waiter polls GetFunction until LastUpdateStatus is Successful
    stub.add_response(
        "get_function",
        {"Configuration": {"LastUpdateStatus": "Successful"}},
        {"FunctionName": "fn-classify"},
    )
    rep = report_line(duration=180.2, billed=348, memory=2048, used=130, init=167.05)
    queue_invoke(stub, rep, success())
    out = make_target(client).invoke(REQUEST, timeout_s=60, force_cold=True)
    assert out.ok and out.cold


def test_failed_configuration_update_is_a_failed_invocation(stubbed: tuple[Any, Planes]) -> None:
    client, stub = stubbed
    queue_update(stub, status="Failed")
    out = make_target(client).invoke(REQUEST, timeout_s=60, force_cold=True)
    assert out.response["error"]["type"] == "PlatformError"
    assert "cold start" in out.response["error"]["message"]


def test_unknown_workload_and_bad_options(stubbed: tuple[Any, Planes]) -> None:
    client, _ = stubbed
    out = make_target(client).invoke({"workload": "mine", "params": {}}, timeout_s=5)
    assert out.response["error"]["type"] == "InvalidRequest"
    with pytest.raises(TargetUnavailable, match=r"unknown --target-opt lambda\.colour"):
        LambdaTarget(TargetSettings(extra={"lambda.colour": "blue"}))


def test_no_credentials_is_target_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(TargetUnavailable, match="credentials"):
        LambdaTarget(TargetSettings()).open()


def test_backoff_is_capped_full_jitter() -> None:
    def backoff_delay(attempt: int, rng: Callable[[], float]) -> float:
        return Backoff(60.0, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S, rng=rng).delay(attempt)

    assert backoff_delay(0, lambda: 1.0) == 0.25
    assert backoff_delay(20, lambda: 1.0) == 8.0
    assert backoff_delay(3, lambda: 0.0) == 0.0


def test_one_update_serves_a_cold_fan_out_until_an_invocation_finishes(
    stubbed: tuple[Any, Planes],
) -> None:
    client, stub = stubbed
    target = make_target(client)
    # GIVEN one configuration update
    queue_update(stub)
    target.retire_warm("classify", deadline=2000.0)
    # WHEN more forced-cold invocations are prepared before any has finished
    target.retire_warm("classify", deadline=2000.0)  # no second update queued: none is made
    # THEN after an invocation finishes, the next forced cold start updates again
    rep = report_line(duration=180.2, billed=348, memory=2048, used=130, init=167.05)
    queue_invoke(stub, rep, success())
    first = target.invoke(REQUEST, timeout_s=60, force_cold=True)
    assert first.cold and "force_cold_wait_ms" in first.extra
    queue_update(stub)
    queue_invoke(stub, rep, success())
    assert target.invoke(REQUEST, timeout_s=60, force_cold=True).cold


def test_prepare_batch_retires_warm_environments_before_the_timed_invocations(
    stubbed: tuple[Any, Planes],
) -> None:
    client, stub = stubbed
    clock = FakeClock(now=1000.0)
    target = make_target(client, clock)
    # GIVEN the driver prepares a forced-cold batch (one configuration update, waited on)
    queue_update(stub)
    target.prepare_batch("classify", force_cold=True, timeout_s=60)
    stub.assert_no_pending_responses()
    # WHEN the batch's invocation runs THEN it makes no update of its own and waits for none
    rep = report_line(duration=180.2, billed=348, memory=2048, used=130, init=167.05)
    queue_invoke(stub, rep, success(cold=True))
    out = target.invoke(REQUEST, timeout_s=60, force_cold=True)
    stub.assert_no_pending_responses()
    assert out.cold and out.extra["force_cold_wait_ms"] == 0.0
    # AND a natural batch needs no preparation at all
    target.prepare_batch("classify", force_cold=False, timeout_s=60)
    stub.assert_no_pending_responses()
