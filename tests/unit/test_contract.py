"""The invocation contract and the shared handler's treatment of bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serverless_hpc import handler
from serverless_hpc.contract import InvalidRequest, error_response, parse_request, validate_response


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ([], "must be a JSON object"),
        ({}, "'workload' is required"),
        ({"workload": ""}, "'workload' is required"),
        ({"workload": "sleep", "params": [1]}, "'params' must be an object"),
        ({"workload": "sleep", "shard": -1}, "'shard' must be a non-negative integer"),
        ({"workload": "sleep", "shard": True}, "'shard' must be a non-negative integer"),
        ({"workload": "sleep", "run_id": 5}, "'run_id' must be a string"),
        ({"workload": "sleep", "extra": 1}, "unknown field(s): extra"),
    ],
)
def test_bad_requests_name_the_field(obj: object, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request(obj)
    assert fragment in str(err.value)


def test_a_good_request_round_trips() -> None:
    req = parse_request({"workload": "classify", "params": {"end": 10}, "run_id": "r", "shard": 2})
    assert req.to_dict() == {
        "workload": "classify",
        "params": {"end": 10},
        "run_id": "r",
        "shard": 2,
    }


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"workload": "nope"}, "field 'workload': unknown workload 'nope'"),
        ({"workload": "classify", "params": {"start": -1}}, "params.start"),
        ({"workload": "classify", "params": {"end": "100"}}, "params.end"),
        ({"workload": "classify", "params": {"end": 10001}}, "params.end"),
        (
            {"workload": "classify", "params": {"start": 50, "end": 10}},
            "params.start (50) must be < params.end (10)",
        ),
        ({"workload": "classify", "params": {"model": "../etc"}}, "field 'model'"),
        ({"workload": "dataproc", "params": {"bins": 3}}, "params.bins"),
        ({"workload": "dataproc", "params": {"split": "validation"}}, "params.split"),
        ({"workload": "train", "params": {"epochs": 0}}, "params.epochs"),
        ({"workload": "train", "params": {"learning_rate": "fast"}}, "params.learning_rate"),
        ({"workload": "sleep", "params": {"seconds": 1, "bogus": True}}, "params.bogus"),
    ],
)
def test_handler_returns_invalid_request_naming_the_field(event: dict, fragment: str) -> None:
    resp = handler.handle(event, platform="test")
    assert resp["ok"] is False
    assert resp["error"]["type"] == "InvalidRequest"
    assert fragment in resp["error"]["message"]


def test_handler_success_envelope_follows_the_contract() -> None:
    resp = handler.handle(
        {"workload": "sleep", "params": {"seconds": 0.01}}, platform="test", memory_mb=256
    )
    validate_response(resp)
    assert resp["ok"] is True and resp["workload"] == "sleep"
    assert resp["result"]["slept_s"] >= 0.01
    assert {"load_ms", "compute_ms"} <= set(resp["timings"])
    assert resp["runtime"]["platform"] == "test" and resp["runtime"]["memory_mb"] == 256


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    event=_json
    | st.fixed_dictionaries(
        {"workload": st.sampled_from(["sleep", "classify", "x"]), "params": _json}
    )
)
def test_handler_never_raises_and_always_answers_an_envelope(event: object) -> None:
    if (
        isinstance(event, dict)
        and event.get("workload") == "sleep"
        and isinstance(event.get("params"), dict)
    ):
        event["params"].pop("seconds", None)  # keep the property test fast
    resp = handler.handle(event, platform="test")
    validate_response(resp)
    json.dumps(resp)  # always serialisable


def test_error_response_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match="unknown error type"):
        error_response("Oops", "x")


def test_a_malformed_first_request_does_not_use_up_the_cold_start() -> None:
    # A fresh process: the first *valid* invocation is the one that pays the loads.
    import subprocess
    import sys

    code = (
        "import json; from serverless_hpc import handler\n"
        "a = handler.handle({'workload': 'nope'}, platform='t')\n"
        "b = handler.handle({'workload': 'sleep'}, platform='t')\n"
        "c = handler.handle({'workload': 'sleep'}, platform='t')\n"
        "print(json.dumps([a['ok'], b['cold_start'], c['cold_start']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, True, False]
