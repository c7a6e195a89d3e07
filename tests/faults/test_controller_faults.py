"""An OpenWhisk controller that misbehaves: silent, dropping connections, echoing secrets,
answering 200 with HTML. The client stays within its deadline, retries what is safe to
retry, and never shows the AUTH key.

``MisbehavingController`` is a test double: a loopback HTTP server that does exactly one bad
thing per path and nothing else of OpenWhisk.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc.openwhisk.client import OpenWhiskClient, PlatformError, RequestError
from serverless_hpc.openwhisk.config import Credentials
from serverless_hpc.redact import scrub
from serverless_hpc.targets.base import Outcome
from tests.faults.conftest import REPO

AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "k" * 64
AUTH_B64 = base64.b64encode(AUTH.encode()).decode()


class MisbehavingController:
    """Test double: one misbehaviour per path (see :meth:`behave`); counts requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.drops_left = 0
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def behave(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        self.calls.append((handler.command, path))
        if path.endswith("/silent"):
            self.release.wait(30)  # never answers within any test deadline
            return
        if path.endswith("/html"):
            self._send(handler, 200, b"<html>maintenance</html>", "text/html")
            return
        if path.endswith("/echo"):
            headers = "".join(f"{k}: {v}\n" for k, v in handler.headers.items())
            body = {"error": f"bad request; you sent:\n{headers}", "code": "c0ffee"}
            self._send(handler, 400, json.dumps(body).encode(), "application/json")
            return
        if "/activations/" in path or path.endswith("/post-drop"):
            if self.drops_left > 0:
                self.drops_left -= 1
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)  # dropped mid-request
                return
            self._send(handler, 200, json.dumps({"activationId": "a1", "response": {}}).encode())
            return
        self._send(handler, 404, b'{"error": "no such path"}')

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json"
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> MisbehavingController:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                double.behave(self)

            do_GET = do_POST = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def client(self, deadline_s: float = 2.0, **kwargs: Any) -> OpenWhiskClient:
        assert self._server is not None
        port = self._server.server_address[1]
        creds = Credentials(apihost=f"http://127.0.0.1:{port}", auth=AUTH)
        return OpenWhiskClient(
            creds, deadline_s=deadline_s, backoff_base_s=0.01, backoff_cap_s=0.05, **kwargs
        )


@pytest.fixture
def controller() -> Iterator[MisbehavingController]:
    pytest.importorskip("requests")
    with MisbehavingController() as double:
        yield double


def test_a_silent_controller_is_given_up_on_at_the_deadline(
    controller: MisbehavingController,
) -> None:
    # GIVEN a controller that accepts the connection and never answers, and a 1 s deadline
    client = controller.client(deadline_s=1.0)
    started = time.monotonic()
    # WHEN a call is made THEN it fails saying the deadline passed (not after the 65 s read
    # timeout, which the deadline cuts); 30 s is a bound no load makes a 1 s wait exceed
    with pytest.raises(PlatformError, match="within the 1 s deadline"):
        client.request("GET", "/silent")
    assert time.monotonic() - started < 30


def test_a_slow_controller_is_shown_as_such(
    controller: MisbehavingController, caplog: pytest.LogCaptureFixture
) -> None:
    client = controller.client(deadline_s=1.0, slow_notice_s=0.1)
    with caplog.at_level(logging.WARNING), pytest.raises(PlatformError):
        client.request("GET", "/silent")
    assert "still waiting for the OpenWhisk controller" in caplog.text


def test_a_dropped_poll_is_retried_within_the_deadline(controller: MisbehavingController) -> None:
    # GIVEN the connection drops on the first two polls of an activation (an idempotent GET)
    controller.drops_left = 2
    # WHEN the activation is fetched THEN the third attempt's record is returned
    record = controller.client().get_activation("a1")
    assert record is not None and record["activationId"] == "a1"
    assert sum(1 for c in controller.calls if "/activations/" in c[1]) == 3


def test_a_dropped_invocation_is_not_resent(controller: MisbehavingController) -> None:
    # GIVEN a POST (an invocation: resending could run it twice) whose connection drops
    controller.drops_left = 1
    with pytest.raises(PlatformError, match="cannot reach"):
        controller.client().request("POST", "/post-drop", body={})
    assert len(controller.calls) == 1


def test_a_200_that_is_not_json_is_a_platform_error(controller: MisbehavingController) -> None:
    with pytest.raises(PlatformError, match="not JSON") as err:
        controller.client().request("GET", "/html")
    assert err.value.status == 200 and "maintenance" in str(err.value)


def test_an_error_body_echoing_the_authorization_never_shows_the_key(
    controller: MisbehavingController,
) -> None:
    # GIVEN a controller that echoes the request headers (Basic auth included) in its error
    with pytest.raises(RequestError) as err:
        controller.client().request("GET", "/echo")
    message = str(err.value)
    # THEN the message keeps the context but neither the key nor its base64 form
    assert "you sent" in message and "[REDACTED]" in message
    assert AUTH not in message and AUTH_B64 not in message and "k" * 64 not in message


def test_a_recorded_error_is_scrubbed() -> None:
    from serverless_hpc.driver import Batch, BenchConfig
    from serverless_hpc.driver.context import RunContext
    from serverless_hpc.targets.base import TimedOutcome

    cfg = BenchConfig(out=Path("unused"), targets=("standalone",), workloads=("sleep",))
    batch = Batch("standalone", "sleep", 1, 0, "natural", ({},), (0,))
    leak = f"echo: Authorization: Basic {AUTH_B64}; key AKIAIOSFODNN7EXAMPLE; {AUTH}"
    outcome = Outcome(
        response={"ok": False, "error": {"type": "PlatformError", "message": leak}}, cold=False
    )
    ctx = RunContext(cfg, None, None, None, None)  # type: ignore[arg-type]
    record = ctx.record(batch, 0, TimedOutcome(outcome, 1.0, 0.0, 0.0))
    assert record.error is not None and "[REDACTED]" in record.error
    for secret in (AUTH, AUTH_B64, "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in record.error


@pytest.mark.parametrize(
    "secret",
    [
        "Authorization: Bearer eyJhbGciOi.abc.def",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ASIAIOSFODNN7EXAMPLE",
    ],
)
def test_scrub_redacts_each_kind_of_credential(secret: str) -> None:
    out = scrub(f"before {secret} after")
    assert out.startswith("before ") and out.endswith(" after") and "[REDACTED]" in out
    assert secret.rsplit(maxsplit=1)[-1] not in out


def test_botocore_debug_logging_never_prints_the_access_key_under_vv(tmp_path: Path) -> None:
    # GIVEN the CLI's logging at -vv, and a real boto3 client (against moto) with a key id
    pytest.importorskip("moto")
    script = """
import boto3, logging
from moto import mock_aws
from serverless_hpc.cli import _configure_logging
_configure_logging(2)
with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                      aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    s3.list_buckets()
logging.getLogger("serverless_hpc").warning("a message holding AKIAIOSFODNN7EXAMPLE")
logging.getLogger("serverless_hpc").debug("debug is on")
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # THEN debug logging is on for the project, the key appears nowhere, even in a message
    assert "debug is on" in done.stderr and "a message holding [REDACTED]" in done.stderr
    assert "AKIAIOSFODNN7EXAMPLE" not in done.stderr and "wJalrXUtnFEMI" not in done.stderr
