"""The Lambda adapter: every malformed event returns the contract's error object."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from serverless_hpc.aws.function.adapter import LambdaAdapter
from serverless_hpc.aws.function.staging import dataset_splits
from serverless_hpc.contract import validate_response
from serverless_hpc.store_s3 import default_client

#: What Lambda passes as ``context`` (test double: only the attributes the adapter reads).
CONTEXT = SimpleNamespace(memory_limit_in_mb="2048", aws_request_id="req-1")


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``lambdas/handler.py`` imported fresh, as Lambda's INIT would, for the dataproc function."""
    monkeypatch.setenv("SHPC_WORKLOAD", "dataproc")
    monkeypatch.delenv("SHPC_DATASET_URI", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    default_client.cache_clear()
    root_level = logging.getLogger().level  # the handler sets INFO, as on Lambda
    sys.modules.pop("lambdas.handler", None)
    module = importlib.import_module("lambdas.handler")
    yield module
    sys.modules.pop("lambdas.handler", None)
    logging.getLogger().setLevel(root_level)
    default_client.cache_clear()


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        (None, "JSON object"),
        ([1, 2], "JSON object"),
        ("classify", "JSON object"),
        ({}, "workload"),
        ({"workload": "classify", "params": {}}, "serves 'dataproc'"),
        ({"workload": "dataproc", "params": [1]}, "params"),
        ({"workload": "dataproc", "params": {}, "colour": "red"}, "unknown field"),
        ({"workload": "dataproc", "params": {"bins": 3}}, "params.bins"),
        ({"workload": "dataproc", "params": {"start": "0"}}, "params.start"),
        ({"workload": "dataproc", "params": {}, "shard": -1}, "shard"),
    ],
)
def test_malformed_events_return_contract_errors(
    handler_module: ModuleType, event: Any, needle: str
) -> None:
    out = handler_module.handler(event, CONTEXT)
    assert validate_response(out) is out
    assert out["ok"] is False
    assert out["error"]["type"] == "InvalidRequest"
    assert needle in out["error"]["message"]
    assert "Traceback" not in out["error"]["message"]


def test_init_measures_the_workload_imports(handler_module: ModuleType) -> None:
    assert isinstance(handler_module.INIT_IMPORT_MS, float)
    assert handler_module.INIT_IMPORT_MS >= 0


def test_dataset_splits_come_from_the_workload_spec() -> None:
    assert dataset_splits("train", {}) == ("train", "test")
    assert dataset_splits("classify", {}) == ("test",)
    assert dataset_splits("classify", None) == ("test",)
    assert dataset_splits("dataproc", {"split": "train"}) == ("train",)
    assert dataset_splits("dataproc", {}) == ("test",)
    # malformed requests stage nothing: the handler's validation names the bad field
    assert dataset_splits("dataproc", {"split": "bogus"}) == ()
    assert dataset_splits("dataproc", ["not", "an", "object"]) == ()
    assert dataset_splits("nope", {}) == ()


def test_adapter_without_workload_pin_passes_through() -> None:
    adapter = LambdaAdapter(env={})
    out = adapter({"workload": "nope"}, CONTEXT)
    assert out["error"]["type"] == "InvalidRequest"
    assert "unknown workload" in out["error"]["message"]
