"""``shpc ow apply|status|destroy`` through argparse, against the controller test double."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_hpc import workloads
from serverless_hpc.openwhisk import cli
from serverless_hpc.workloads.spec import WorkloadSpec
from tests.doubles.openwhisk_controller import SECRET, ControllerDouble

pytest_plugins = ["tests.doubles.openwhisk_fixtures"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shpc")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_module_imports_only_the_standard_library() -> None:
    # GIVEN a fresh interpreter WHEN the CLI module is imported
    code = (
        "import sys, serverless_hpc.openwhisk.cli as c; "
        "print(sorted(m for m in ('requests', 'aiohttp', 'pulumi', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # THEN no third-party package was loaded
    assert out.stdout.strip() == "[]"


def test_apply_status_destroy_round_trip(
    controller: ControllerDouble, wskprops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN credentials for the double WHEN apply, status and destroy run
    lean = ["--image-lean", "img:1", "--workloads", "classify,dataproc"]
    assert _run(["ow", "apply", *lean, "--memory", "dataproc=256"]) == 0
    assert _run(["ow", "status"]) == 0
    assert controller.actions["serverless-hpc/dataproc"]["limits"]["memory"] == 256
    assert _run(["ow", "destroy"]) == 0
    assert _run(["ow", "status"]) == 0
    # THEN each printed what it did, the namespace is empty, and no key was printed
    out = capsys.readouterr()
    assert "applied serverless-hpc/classify" in out.out
    assert "serverless-hpc/dataproc: version 0.0.1, 256 MB" in out.out
    assert "deleted serverless-hpc\n" in out.out
    assert "package serverless-hpc: absent" in out.out
    assert controller.actions == {} and controller.packages == {}
    assert SECRET not in out.out + out.err


def test_limit_violation_exits_2_with_the_reason(
    controller: ControllerDouble, wskprops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the default 512 MB cap WHEN train is applied with its 2048 MB
    code = _run(["ow", "apply", "--image-train", "img:t", "--workloads", "train"])
    # THEN exit 2, the reason on stderr, and nothing created
    assert code == 2
    assert "memory 2048 MB exceeds the maximum 512 MB" in capsys.readouterr().err
    assert controller.actions == {}


def test_missing_credentials_exit_2(ow_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no wsk properties WHEN status runs THEN exit 2 and a pointer to ~/.wskprops
    assert _run(["ow", "status"]) == 2
    assert ".wskprops" in capsys.readouterr().err


def test_controller_refusal_exits_1(
    controller: ControllerDouble, wskprops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a controller failing with 500 WHEN status runs THEN exit 1 with the error
    controller.inject("GET", r"/packages/", 500)
    assert _run(["ow", "status"]) == 1
    assert "platform error" in capsys.readouterr().err


def test_bad_memory_option_is_a_usage_error() -> None:
    # GIVEN a malformed --memory WHEN parsed THEN argparse exits with usage (2)
    with pytest.raises(SystemExit) as err:
        _run(["ow", "apply", "--memory", "train=lots"])
    assert err.value.code == 2


def test_plugs_into_shpc_through_plugin_commands(
    controller: ControllerDouble,
    wskprops: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN shpc with this module listed as a plug-in (as PLUGIN_COMMANDS will list it)
    from serverless_hpc import cli as shpc

    monkeypatch.setattr(shpc, "PLUGIN_COMMANDS", ("serverless_hpc.openwhisk.cli",))
    # WHEN `shpc ow status` runs through shpc's own entry point
    code = shpc.main(["ow", "status"])
    # THEN the sub-command ran against the configured endpoint
    assert code == 0
    assert "package serverless-hpc: absent" in capsys.readouterr().out


def test_apply_defaults_to_every_workload_a_copied_package_included(
    controller: ControllerDouble,
    wskprops: Path,
    capsys: pytest.CaptureFixture[str],
    copy_workload: Callable[[str, str], WorkloadSpec],
) -> None:
    # GIVEN a copy of dataproc under a new name, and a namespace that admits every spec
    copy_workload("dataproc", "dataproc2")
    controller.limits.update(maxActionMemory=4096, maxActionTimeout=900_000)
    # WHEN `shpc ow apply` runs without --workloads
    assert _run(["ow", "apply", "--image-lean", "img:l", "--image-train", "img:t"]) == 0
    # THEN every workload, the copy included, is an action
    out = capsys.readouterr().out
    for name in workloads.names():
        assert f"applied serverless-hpc/{name}\n" in out
    assert "serverless-hpc/dataproc2" in controller.actions
