"""The action adapter ``openwhisk/action.py``: OpenWhisk args in, contract envelope out."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The adapter, imported as OpenWhisk's init would (action name in the environment)."""
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/serverless-hpc/dataproc")
    spec = importlib.util.spec_from_file_location("ow_action", REPO / "openwhisk" / "action.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_contract_error_becomes_an_openwhisk_error_result(action: ModuleType) -> None:
    # GIVEN a request with a wrong parameter type WHEN main runs
    out = action.main({"workload": "dataproc", "params": {"start": "zero"}})
    # THEN the result is {"error": <failure envelope>} (an application error for OpenWhisk)
    assert set(out) == {"error"}
    assert out["error"]["ok"] is False
    assert out["error"]["error"]["type"] == "InvalidRequest"
    assert "params.start" in out["error"]["error"]["message"]


def test_unknown_request_field_is_still_reported(action: ModuleType) -> None:
    # GIVEN a stray field that is neither contract nor adapter configuration
    out = action.main({"workload": "dataproc", "oops": 1})
    # THEN the contract names it
    assert "oops" in out["error"]["error"]["message"]


def test_success_strips_configuration_and_reports_memory(
    action: ModuleType, data_dir: Path
) -> None:
    # GIVEN a valid request merged with bound parameters and web-action fields
    args = {
        "workload": "dataproc",
        "params": {"split": "test", "start": 0, "end": 50},
        "shpc_memory_mb": 512,
        "shpc_data_dir": str(data_dir),
        "__ow_method": "post",
    }
    # WHEN main runs
    out = action.main(args)
    # THEN it is the success envelope, platform openwhisk, with the bound memory
    assert out["ok"] is True
    assert out["result"]["n"] == 50
    assert out["runtime"]["platform"] == "openwhisk"
    assert out["runtime"]["memory_mb"] == 512
