"""No secret in any output: each form a server may echo one in, through the real commands.

The OpenWhisk AUTH key (whole, user and password apart, only the key part, base64), an AWS
secret key and session token (in a botocore error, URL-encoded in a query string), a password
inside ``--apihost``, and a ``-v`` traceback quoting a secret. The credentials come from the
controller test double and from AWS environment variables; no cloud is contacted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from serverless_hpc import targets
from serverless_hpc.cli import main
from serverless_hpc.redact import scrub
from serverless_hpc.targets.base import Outcome, Target
from tests.doubles.openwhisk_controller import DEFAULT_AUTH, SECRET, ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]

USER = DEFAULT_AUTH.partition(":")[0]
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TOKEN = "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJGMEQCIFakeSessionToken/For+Tests=="


def _no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}... leaked: {text[:2000]}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS credentials in the environment (as a user's shell would have them); no real AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


# -- OpenWhisk ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"error": f"login failed: user {USER}, password {SECRET}"},
        {"error": f"unknown key {SECRET}"},
        {"error": "bad request", "user": USER, "password": SECRET},
        {"error": f"Authorization header was {quote(DEFAULT_AUTH, safe='')}"},
    ],
)
def test_an_openwhisk_error_body_never_shows_the_key(
    controller: ControllerDouble,
    wskprops: Path,
    capsys: pytest.CaptureFixture[str],
    body: dict[str, str],
) -> None:
    # GIVEN a controller whose answer echoes the key in this form
    controller.inject("GET", r"/packages/", 500, body, times=100)
    # WHEN shpc ow status runs (-vv: every log line too)
    code = main(["-vv", "ow", "status"])
    out = capsys.readouterr()
    # THEN it fails with an error line, and no part of the key is in any output
    assert code == 1 and "error:" in out.err
    _no_secret(out.out + out.err, SECRET, USER, quote(DEFAULT_AUTH, safe=""))


def test_an_application_error_quoting_the_key_is_not_recorded(
    controller: ControllerDouble, wskprops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serverless_hpc.openwhisk import deploy
    from serverless_hpc.openwhisk.client import OpenWhiskClient
    from serverless_hpc.openwhisk.config import load_credentials

    # GIVEN an action whose code fails with a message quoting the key part of AUTH
    client = OpenWhiskClient(load_credentials())
    cfg = deploy.ProjectConfig(
        workloads=("sleep",), images={"lean": "img:1"}, timeout_ms={"sleep": 60_000}
    )
    deploy.apply(client, cfg)
    code = f"def main(args):\n    raise RuntimeError('cannot use key {SECRET}')\n"
    client.put_action(
        "serverless-hpc/sleep",
        {"exec": {"kind": "blackbox", "image": "img:1", "code": code}},
        overwrite=True,
    )
    # WHEN it is invoked through the openwhisk target
    rc = main(["invoke", "openwhisk", '{"workload": "sleep", "params": {}}', "--timeout", "60"])
    out = capsys.readouterr()
    # THEN the failure is shown, without the key
    assert rc == 1 and "[REDACTED]" in out.out
    _no_secret(out.out + out.err, SECRET)


def test_a_password_inside_apihost_is_refused_and_never_shown(
    ow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ow_env / ".wskprops").write_text(f"AUTH={DEFAULT_AUTH}\n")
    code = main(["-vv", "ow", "status", "--apihost", "https://admin:hunter2hunter2@127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "error: --apihost: APIHOST must not hold a user or password" in err
    _no_secret(err, "hunter2hunter2", SECRET)


@pytest.mark.parametrize(
    ("apihost", "named"),
    [
        ("h" * 5000, "5000 characters long"),
        ("https://" + "a" * 70 + ".example", "not a valid host name"),
        ("https://host:99999", "not a URL"),
        ("https://host:0", "port must be 1-65535"),
        ("ftp://host", "not a host or an http(s) URL"),
        ("https://ho st", "without spaces"),
    ],
)
def test_a_bad_apihost_is_a_usage_error_naming_the_option(
    ow_env: Path, capsys: pytest.CaptureFixture[str], apihost: str, named: str
) -> None:
    (ow_env / ".wskprops").write_text(f"AUTH={DEFAULT_AUTH}\n")
    code = main(["ow", "status", "--apihost", apihost])
    err = capsys.readouterr().err
    assert code == 2 and "error: --apihost: " in err and named in err, err
    assert "Traceback" not in err


def test_a_fifo_as_wskprops_is_refused_at_once(
    ow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    os.mkfifo(ow_env / ".wskprops")
    code = main(["ow", "status", "--apihost", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "not a regular file but a FIFO" in err


# -- AWS ---------------------------------------------------------------------------------


def _client_error(message: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": message}}, "Op")


ECHOES = [
    f"canonical request: GET /?X-Amz-Security-Token={quote(AWS_TOKEN, safe='')}&Action=x",
    f"Credential={AWS_KEY_ID}/20260101/us-east-1/s3/aws4_request",
    f"the secret {AWS_SECRET} does not match",
    f"token {AWS_TOKEN}",
]


@pytest.mark.parametrize("echo", ECHOES)
def test_shpc_status_never_shows_an_echoed_aws_credential(
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    echo: str,
) -> None:
    pytest.importorskip("boto3")
    from serverless_hpc.aws import status

    def fail(*_: Any, **__: Any) -> Any:
        raise _client_error(echo)

    monkeypatch.setattr(status, "tagged_resources", fail)
    code = main(["-vv", "status"])
    out = capsys.readouterr()
    assert code == 2 and "error: cannot list tagged resources" in out.err
    _no_secret(out.out + out.err, AWS_KEY_ID, AWS_SECRET, AWS_TOKEN, quote(AWS_TOKEN, safe=""))


@pytest.mark.parametrize("echo", ECHOES)
def test_a_lambda_session_registers_its_credentials(aws_env: None, echo: str) -> None:
    pytest.importorskip("boto3")
    from serverless_hpc.targets.aws_session import open_session

    # WHEN the lambda/ec2 targets open their session THEN its credentials are secrets
    open_session("lambda", profile=None, region=None)
    _no_secret(scrub(str(_client_error(echo))), AWS_KEY_ID, AWS_SECRET, AWS_TOKEN)


@pytest.mark.parametrize("echo", ECHOES)
def test_an_s3_store_error_never_shows_an_echoed_credential(
    aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], echo: str
) -> None:
    pytest.importorskip("boto3")
    from serverless_hpc import store_s3

    class EchoingS3:
        """A test double of an S3 client whose every call fails echoing the request."""

        def head_bucket(self, **_: Any) -> Any:
            raise _client_error(echo)

    store_s3.default_client.cache_clear()
    store_s3.default_client()  # registers the environment's credentials, as a run does
    original = store_s3.S3Store.__init__

    def with_double(self: Any, bucket: str, prefix: str = "", **kw: Any) -> None:
        original(self, bucket, prefix, client=EchoingS3(), cache_dir=tmp_path)

    import unittest.mock

    with unittest.mock.patch.object(store_s3.S3Store, "__init__", with_double):
        code = main(["bench", "--targets", "standalone", "--store", "s3://bucket-x/p", "-q"])
    store_s3.default_client.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "error: --store: bucket 'bucket-x' cannot be reached" in err
    _no_secret(err, AWS_KEY_ID, AWS_SECRET, AWS_TOKEN, quote(AWS_TOKEN, safe=""))


class LeakyDouble(Target):
    """A test double with a bug whose message quotes a registered secret."""

    name = "leaky-double"

    def open(self) -> None:
        raise RuntimeError(f"bug while holding {AWS_SECRET} and {AWS_TOKEN}")

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        raise AssertionError("never reached")


def test_a_verbose_traceback_never_shows_a_registered_secret(
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("boto3")
    from serverless_hpc.targets.aws_session import open_session

    open_session("lambda", profile=None, region=None)  # the process learns the credentials
    monkeypatch.setitem(targets.TARGETS, LeakyDouble.name, f"{__name__}:LeakyDouble")
    args = ["-v", "bench", "--targets", "leaky-double", "--workloads", "sleep", "-q"]
    code = main([*args, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code in (2, 4) and "Traceback" in err and "[REDACTED]" in err
    _no_secret(err, AWS_SECRET, AWS_TOKEN)
    run_json = tmp_path / "run" / "run.json"
    if run_json.exists():
        _no_secret(json.dumps(json.loads(run_json.read_text())), AWS_SECRET, AWS_TOKEN)
