"""One deadline for a whole network exchange, whatever the server's pace.

Servers that answer one byte every 3 s (test doubles: ``tests/doubles/drip_server.py`` and
the Invoke endpoint double in drip mode) defeat per-read socket timeouts: every read gets a
byte. The OpenWhisk client, ``shpc ow status``, a ``--targets lambda`` run and the lambda
target's boto3 clients must end at their deadline anyway, and a SIGTERM must end such a run
at once.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import workloads
from serverless_hpc.openwhisk import transport as ow_transport
from serverless_hpc.openwhisk.client import OpenWhiskClient, PlatformError
from serverless_hpc.openwhisk.config import Credentials
from serverless_hpc.rundir import read_records
from tests.doubles.drip_server import DripServer
from tests.doubles.lambda_invoke import DRIP, InvokeDouble
from tests.faults.conftest import shpc_env, start_shpc, wait_for

AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "k" * 64


@pytest.fixture
def drip() -> Iterator[DripServer]:
    with DripServer(drip_s=3.0) as server:
        yield server


def test_an_openwhisk_call_ends_at_its_deadline(drip: DripServer) -> None:
    # GIVEN a controller that drips its answer and a client with a 4 s deadline
    client = OpenWhiskClient(Credentials(apihost=drip.url, auth=AUTH), deadline_s=4.0)
    try:
        t0 = time.monotonic()
        # WHEN it asks for the namespace limits THEN it gives up at the deadline
        with pytest.raises(PlatformError, match="within the 4 s deadline"):
            client.get_limits()
        assert 3.9 < time.monotonic() - t0 < 6.0
    finally:
        client.close()


def test_ow_status_gives_up_when_it_says_it_will(
    drip: DripServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN `shpc ow status` against the dripping controller, its 60 s deadline made 4 s
    # (and the slow-call notice 1 s) so the test does not take a minute
    monkeypatch.setattr(ow_transport, "DEFAULT_DEADLINE_S", 4.0)
    monkeypatch.setattr(ow_transport, "SLOW_NOTICE_S", 1.0)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WSK_CONFIG_FILE", raising=False)
    monkeypatch.setenv("WHISK_APIHOST", drip.url)
    monkeypatch.setenv("WHISK_AUTH", AUTH)
    from serverless_hpc import cli

    # WHEN it runs
    t0 = time.monotonic()
    code = cli.main(["ow", "status"])
    wall = time.monotonic() - t0
    # THEN it said when it would give up, and gave up then: exit 1, an error line, no key
    assert "giving up after 4 s" in caplog.text
    assert code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "within the 4 s deadline" in err
    assert AUTH.split(":")[1] not in err + caplog.text
    assert 3.9 < wall < 7.0


def _lambda_run(tmp_path: Path, url: str, timeout_s: int) -> tuple[list[str], dict[str, str]]:
    """``shpc bench --targets lambda`` of one sleep invocation on the Invoke double at ``url``."""
    args = ["bench", "--targets", "lambda", "--workloads", "sleep", "--shards", "1"]
    args += ["--repeats", "1", "--modes", "natural", "--timeout", str(timeout_s), "-q"]
    args += ["--concurrency", "1", "--out", str(tmp_path / "run")]
    for name in workloads.names():
        args += ["--target-opt", f"function.{name}=fn-{name}"]
    args += ["--target-opt", "architecture=x86_64"]
    env = shpc_env(
        tmp_path,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_LAMBDA=url,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    return args, env


def _dripping(name: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return DRIP, {}, json.dumps({"ok": True, "pad": "x" * 100}).encode()


def test_a_lambda_run_with_timeout_10_ends_near_10_s(tmp_path: Path) -> None:
    # GIVEN an Invoke endpoint that drips its answer one byte every 3 s
    with InvokeDouble(delay_s=0.0, respond=_dripping, drip_s=3.0) as double:
        args, env = _lambda_run(tmp_path, double.url, 10)
        # WHEN a run with --timeout 10 invokes it
        proc = start_shpc(args, env, tmp_path)
        wait_for("the invocation to be sent", lambda: double.stats.requests >= 1, 60)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    # THEN the invocation ends at its deadline, as a Timeout, and the run says so (exit 1)
    assert proc.returncode == 1, err
    assert waited < 14.0  # 10 s from the send, plus the report
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert [r["error"].split(":")[0] for r in records] == ["Timeout"]
    assert 9.9 < records[0]["client_ms"] / 1e3 < 11.0
    assert "Traceback" not in err


def test_sigterm_ends_a_dripping_lambda_run_at_once(tmp_path: Path) -> None:
    # GIVEN a run whose invocation is being answered one byte every 3 s (timeout 600 s)
    with InvokeDouble(delay_s=0.0, respond=_dripping, drip_s=3.0) as double:
        args, env = _lambda_run(tmp_path, double.url, 600)
        proc = start_shpc(args, env, tmp_path)
        wait_for("the invocation to be sent", lambda: double.stats.requests >= 1, 60)
        time.sleep(1.0)
        # WHEN the driver is sent SIGTERM
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    # THEN it stops within seconds, saying why, with the run marked aborted
    assert proc.returncode == 143, err
    assert waited < 5.0
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["aborted"]["by"] == "SIGTERM"


def _boto3(service: str, url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=5),
    )


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("lambda", lambda c: c.get_function_configuration(FunctionName="fn")),
        ("s3", lambda c: c.get_object(Bucket="b", Key="progress.json")["Body"].read()),
    ],
)
def test_a_bounded_boto3_call_ends_at_its_deadline(
    drip: DripServer, service: str, call: Any
) -> None:
    from botocore.exceptions import ReadTimeoutError

    from serverless_hpc.netloop import LoopThread
    from serverless_hpc.targets.aws_deadline import bound

    # GIVEN a boto3 client (5 s per read) bounded at 4 s per exchange, on a dripping server
    loop = LoopThread("test")
    client = _boto3(service, drip.url)
    bound(client, loop, deadline_s=4.0)
    try:
        t0 = time.monotonic()
        # WHEN it calls THEN botocore's ReadTimeoutError at the deadline, not 5 s per byte
        with pytest.raises(ReadTimeoutError):
            call(client)
        assert 3.9 < time.monotonic() - t0 < 6.0
    finally:
        loop.close()


def test_a_bounded_boto3_client_still_reads_answers() -> None:
    from serverless_hpc.netloop import LoopThread
    from serverless_hpc.targets.aws_deadline import bound

    # GIVEN a bounded Lambda client on the Invoke double
    loop = LoopThread("test")
    with InvokeDouble(delay_s=0.0, concurrent_executions=700, unreserved=650) as double:
        client = _boto3("lambda", double.url)
        bound(client, loop, deadline_s=10.0)
        try:
            # WHEN it reads the account settings and an error THEN botocore parses both
            limits = client.get_account_settings()["AccountLimit"]
            assert (limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]) == (
                700,
                650,
            )
            with pytest.raises(client.exceptions.ClientError):
                client.get_function_configuration(FunctionName="none")  # 404 from the double
        finally:
            loop.close()
