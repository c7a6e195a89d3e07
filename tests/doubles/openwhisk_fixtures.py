"""pytest fixtures around the OpenWhisk controller test double; the ``test_openwhisk_*``
modules load them with ``pytest_plugins = ["tests.doubles.openwhisk_fixtures"]``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.openwhisk_controller import ControllerDouble


@pytest.fixture
def ow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment: no wsk variables, HOME in a temporary directory."""
    for key in list(os.environ):
        if key.startswith(("WHISK_", "__OW_", "SHPC_OW_")) or key == "WSK_CONFIG_FILE":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerDouble]:
    """A running controller double. Its containers get a private model store; tests that run
    workloads add ``FASHION_MNIST_DIR`` (from the suite's ``data_dir`` fixture) themselves."""
    env = {"SHPC_STORE": str(tmp_path / "store")}
    with ControllerDouble(container_env=env, log_path=tmp_path / "containers.log") as double:
        yield double


@pytest.fixture
def wskprops(controller: ControllerDouble, ow_env: Path) -> Path:
    """``~/.wskprops`` pointing at the double (found the way wsk finds it)."""
    return controller.write_wskprops(ow_env / ".wskprops")
