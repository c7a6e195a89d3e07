"""The REST client's status handling, against the controller test double (no containers)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serverless_hpc.openwhisk.client import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OpenWhiskClient,
    PayloadTooLargeError,
    PlatformError,
    ThrottledError,
)
from serverless_hpc.openwhisk.config import Credentials, load_credentials
from tests.doubles.openwhisk_controller import SECRET, ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]


def _client(deadline_s: float = 5.0) -> OpenWhiskClient:
    return OpenWhiskClient(
        load_credentials(), deadline_s=deadline_s, backoff_base_s=0.01, backoff_cap_s=0.05
    )


def _package_body() -> dict[str, object]:
    return {"annotations": [{"key": "managed-by", "value": "t"}], "parameters": []}


def test_wrong_auth_key_is_a_credentials_error_without_the_key(
    controller: ControllerDouble, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a client whose AUTH key the controller does not know
    caplog.set_level(logging.DEBUG)
    creds = Credentials(apihost=controller.apihost, auth=f"someone:{SECRET}-wrong")
    client = OpenWhiskClient(creds)
    # WHEN it calls the API
    with pytest.raises(AuthenticationError) as err:
        client.get_limits()
    # THEN the error is 401, says to check the credentials, and contains no key
    assert err.value.status == 401
    assert "The supplied authentication is invalid" in str(err.value)
    assert "Check AUTH" in str(err.value)
    assert SECRET not in str(err.value) + repr(client) + caplog.text


def test_foreign_namespace_is_403(controller: ControllerDouble, ow_env: Path) -> None:
    # GIVEN credentials naming a namespace the key may not access
    creds = Credentials(apihost=controller.apihost, auth=controller.auth, namespace="other")
    # WHEN a package is requested THEN AuthenticationError with status 403
    with pytest.raises(AuthenticationError) as err:
        OpenWhiskClient(creds).get_package("p")
    assert err.value.status == 403


def test_absent_entities_are_none_on_get_and_404_on_delete(wskprops: Path) -> None:
    # GIVEN an empty namespace WHEN getting and deleting THEN None and NotFoundError
    client = _client()
    assert client.get_package("nope") is None
    assert client.get_action("nope/a") is None
    assert client.get_activation("0" * 32) is None
    with pytest.raises(NotFoundError, match="does not exist"):
        client.delete_action("nope/a")


def test_create_without_overwrite_on_existing_is_409(wskprops: Path) -> None:
    # GIVEN an existing package
    client = _client()
    client.put_package("p", _package_body(), overwrite=False)
    # WHEN it is created again without overwrite THEN 409, and with overwrite it updates
    with pytest.raises(ConflictError, match="already exists"):
        client.put_package("p", _package_body(), overwrite=False)
    assert client.put_package("p", _package_body(), overwrite=True)["version"] == "0.0.2"


def test_payload_over_the_cap_is_413(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN an action and a payload over the namespace's 1 MB payload limit
    client = _client()
    client.put_package("p", _package_body(), overwrite=True)
    client.put_action("p/a", {"exec": {"kind": "blackbox", "image": "x"}}, overwrite=True)
    # WHEN it is invoked THEN PayloadTooLargeError, and no activation was started
    with pytest.raises(PayloadTooLargeError) as err:
        client.invoke("p/a", {"blob": "x" * (1024 * 1024 + 1)})
    assert err.value.status == 413
    assert controller.activations == {}


def test_429_is_retried_until_it_succeeds(controller: ControllerDouble, wskprops: Path) -> None:
    # GIVEN a controller that throttles the next two limit requests
    controller.inject("GET", r"/limits$", 429, times=2)
    # WHEN the limits are requested
    limits = _client().get_limits()
    # THEN the third attempt's answer is returned
    assert limits["maxActionMemory"] == 512
    assert sum(1 for c in controller.calls if c[1].endswith("/limits")) == 3


def test_429_past_the_deadline_raises_throttled(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN a controller that throttles every request
    controller.inject("GET", r"/limits$", 429, times=10_000)
    # WHEN the limits are requested with a 0.3 s deadline
    with pytest.raises(ThrottledError, match="still throttled") as err:
        _client(deadline_s=0.3).get_limits()
    # THEN it gave up with 429 after several (bounded) attempts
    assert err.value.status == 429
    assert 2 <= sum(1 for c in controller.calls if c[1].endswith("/limits")) < 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_outside_invoke_is_a_platform_error_and_not_retried(
    controller: ControllerDouble, wskprops: Path, status: int
) -> None:
    # GIVEN a controller that fails the next limits request with a 5xx
    controller.inject("GET", r"/limits$", status)
    # WHEN the limits are requested THEN PlatformError, after a single attempt
    with pytest.raises(PlatformError, match="platform error") as err:
        _client().get_limits()
    assert err.value.status == status
    assert sum(1 for c in controller.calls if c[1].endswith("/limits")) == 1


def test_unreachable_controller_is_a_platform_error(ow_env: Path) -> None:
    # GIVEN a controller address where nothing listens (port 9 on loopback: discard)
    creds = Credentials(apihost="http://127.0.0.1:9", auth=f"u:{SECRET}")
    # WHEN called THEN PlatformError naming the endpoint, not the key
    with pytest.raises(PlatformError, match="cannot reach") as err:
        OpenWhiskClient(creds, deadline_s=1.0).get_limits()
    assert SECRET not in str(err.value)


def test_invoke_of_unknown_action_is_404(wskprops: Path) -> None:
    # GIVEN no such action WHEN invoked THEN NotFoundError
    with pytest.raises(NotFoundError):
        _client().invoke("p/none", {})


def test_non_blocking_invoke_returns_only_the_id(
    controller: ControllerDouble, wskprops: Path
) -> None:
    # GIVEN an action whose code cannot initialise (the activation fails fast)
    client = _client()
    client.put_package("p", _package_body(), overwrite=True)
    body = {"exec": {"kind": "blackbox", "image": "x", "code": "raise SystemExit(3)"}}
    client.put_action("p/a", body, overwrite=True)
    # WHEN it is invoked without blocking
    inv = client.invoke("p/a", {}, blocking=False)
    # THEN 202 with an id and no record; polling then yields the developer error record
    assert (inv.status, inv.record) == (202, None)
    record = client.wait_activation(inv.activation_id, deadline_s=30.0)
    assert record["response"]["success"] is False
    assert record["response"]["status"] == "action developer error"


def test_insecure_switch_turns_off_certificate_verification(ow_env: Path) -> None:
    # GIVEN credentials with and without -i WHEN clients are built
    secure = OpenWhiskClient(Credentials(apihost="ow.example", auth="u:k"))
    insecure = OpenWhiskClient(Credentials(apihost="ow.example", auth="u:k", insecure=True))
    # THEN only the insecure one skips TLS verification, and both speak https
    assert secure.verify is True
    assert insecure.verify is False
    assert insecure.base_url == "https://ow.example/api/v1"
