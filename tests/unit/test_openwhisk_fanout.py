"""The ``openwhisk`` target's fan-out against the controller double (simulated actions).

The double (``tests/doubles/openwhisk_controller.py``) is not OpenWhisk: in simulate mode it
answers each invocation with a contract success after a fixed time, without containers,
throttles a chosen share (429) and counts what it ran and the peak in flight.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_hpc import netloop
from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import NotSent, OpenWhiskClient
from serverless_hpc.openwhisk.config import Credentials, load_credentials
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.openwhisk import OpenWhiskTarget
from tests.doubles.openwhisk_controller import DEFAULT_LIMITS, ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]


def requests_of(n: int) -> list[dict[str, object]]:
    return [{"workload": "classify", "params": {"start": i, "end": i + 1}} for i in range(n)]


def simulated(ow_env: Path, **kwargs: object) -> ControllerDouble:
    """A controller double with simulated actions (started), the project applied on it."""
    double = ControllerDouble(simulate_s=0.1, **kwargs)  # type: ignore[arg-type]
    double.__enter__()
    double.write_wskprops(ow_env / ".wskprops")
    client = OpenWhiskClient(load_credentials())
    deploy.apply(client, deploy.ProjectConfig(workloads=("classify",), images={"lean": "i:1"}))
    client.close()
    return double


@pytest.fixture
def throttling(ow_env: Path) -> Iterator[ControllerDouble]:
    limits = {**DEFAULT_LIMITS, "concurrentInvocations": 1000}
    double = simulated(ow_env, limits=limits, throttle_share=0.3)
    yield double
    double.__exit__(None, None, None)


def test_every_invocation_succeeds_once_and_the_429s_are_counted(
    throttling: ControllerDouble,
) -> None:
    # GIVEN a controller with a 5-connection listen backlog that throttles 30% of invocations
    with OpenWhiskTarget(TargetSettings()) as target:
        assert target.max_parallel == 1000  # the namespace's concurrentInvocations
        # WHEN 200 invocations go out as one batch
        timed = target.invoke_batch(requests_of(200), timeout_s=60)
    # THEN every one succeeded, each ran exactly once, and every 429 is in the outcomes
    assert all(t.outcome.ok for t in timed)
    counted = sum(t.outcome.throttled for t in timed)
    assert counted == throttling.throttled > 0
    ran = throttling._invocations - throttling.throttled
    assert ran == 200
    assert sum(t.outcome.retries for t in timed) >= counted


def test_the_namespace_limit_holds_and_is_described(ow_env: Path) -> None:
    # GIVEN a namespace admitting 8 concurrent invocations
    double = simulated(ow_env, limits={**DEFAULT_LIMITS, "concurrentInvocations": 8})
    try:
        with OpenWhiskTarget(TargetSettings()) as target:
            described = target.describe()
            # WHEN a batch of 40 goes out
            timed = target.invoke_batch(requests_of(40), timeout_s=60)
    finally:
        double.__exit__(None, None, None)
    # THEN at most 8 ran at once, none was refused, and run.json will say why 8
    assert (described["max_parallel"], described["max_parallel_source"]) == (
        8,
        "namespace limits concurrentInvocations",
    )
    assert all(t.outcome.ok and t.outcome.throttled == 0 for t in timed)
    # (at most 8; exactly 8 only when the machine keeps 8 sends ahead of the first reply)
    assert 2 <= double.max_in_flight <= 8


def test_a_connection_the_controller_never_accepts_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a controller whose listen backlog is full and which never accepts (its sent
    # bytes are never acknowledged), and a 1 s abort for unacknowledged bytes
    monkeypatch.setattr(netloop, "UNACKED_TIMEOUT_S", 1.0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.create_connection(("127.0.0.1", port), timeout=5)]  # the queue: full
        client = OpenWhiskClient(Credentials(apihost=f"http://127.0.0.1:{port}", auth="u:k"))
        try:
            t0 = time.monotonic()
            # WHEN an invocation is attempted THEN it is known never to have arrived
            with pytest.raises(NotSent):
                client.loop.run(
                    client.attempt("POST", "/namespaces/_/actions/p/a", body={}, deadline_s=20)
                )
            assert time.monotonic() - t0 < 15
        finally:
            client.close()
            for sock in queued:
                sock.close()
