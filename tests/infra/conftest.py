"""CDK fixtures: the app built in-process once per session, and one real ``cdk synth``.

Both need the real Fashion-MNIST files (the dataset construct verifies their md5 at synth time), so
both take the session's ``data_dir`` fixture and are skipped, with the reason, without them.
The CLI synth also needs Node.js and the project's npm ``aws-cdk`` (``npm ci`` installs it
from package-lock.json into node_modules/); without them it is skipped with the reason, while
the in-process ``aws_cdk.assertions`` tests still run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

CDK_BIN = REPO / "node_modules" / ".bin" / "cdk"
#: Modules that need Node.js: aws-cdk-lib runs on the jsii runtime, a ``node`` child process
#: started as soon as ``aws_cdk`` is imported, and the CDK CLI is a Node.js program.
NEEDS_NODE = frozenset({"test_stacks.py", "test_synth_cli.py", "test_credit_mode.py"})
#: Single tests elsewhere that import ``aws_cdk`` (through ``stacks.data``) in their body.
NEEDS_NODE_TESTS = frozenset(
    {"test_config.py::test_missing_dataset_fails_synth_with_a_clear_message"}
)


def _node_missing() -> str | None:
    """Why the jsii runtime cannot start here, or None when ``node`` is on PATH."""
    if os.environ.get("JSII_NODE") or shutil.which("node"):
        return None
    return (
        "node not found on PATH: aws-cdk-lib runs on Node.js (jsii), so the CDK template and "
        "synth tests cannot run here (install Node.js, then 'make test')"
    )


class _SkippedModule(pytest.Module):
    """A test module reported as skipped, with the reason, instead of failing to import."""

    reason = ""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        pytest.skip(f"{self.path.name}: {self.reason}")


def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    """Skip the modules that import ``aws_cdk`` when Node.js is absent (they would error)."""
    reason = _node_missing() if module_path.name in NEEDS_NODE else None
    if reason is None:
        return None
    module = _SkippedModule.from_parent(parent, path=module_path)
    module.reason = reason
    return module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip, with the reason, the single tests that need Node.js when it is absent."""
    reason = _node_missing()
    if reason is None:
        return
    for item in items:
        if f"{item.path.name}::{item.name}" in NEEDS_NODE_TESTS:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class SynthResult:
    """A CLI synth: where the cloud assembly is, how long it took, what the CLI printed."""

    outdir: Path
    seconds: float
    output: str


@pytest.fixture(scope="session")
def cdk_app(data_dir: Path) -> dict[str, object]:
    """The deployment's stack built in-process (cdk-nag off here; the CLI synth runs it)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import app as cdk_app_module

    app = cdk.App(context={"dataset_dir": str(data_dir), "nag": "false"})
    stack = cdk_app_module.build(app)
    return {"app": app, "stack": stack, "template": Template.from_stack(stack)}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        CDK_DISABLE_VERSION_CHECK="1",
        # cdk.json runs "python3 app.py": make that the interpreter running the tests.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    for key in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> SynthResult:
    """``cdk synth`` through the project's npm CLI, once per session.

    Skipped, with the reason, when the CLI is not installed and npm is not there to install
    it; when npm is there but node_modules/ is not, it is installed here as ``make test`` does.
    """
    env = _env()
    if not CDK_BIN.exists():
        npm = shutil.which("npm", path=env["PATH"])
        if npm is None:
            pytest.skip(
                f"CDK synth tests skipped: {CDK_BIN.relative_to(REPO)} is absent and npm is "
                "not on PATH to install it (install Node.js/npm, then 'npm ci' or 'make test')"
            )
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO, check=True, timeout=300)
    outdir = tmp_path_factory.mktemp("cdk") / "cdk.out"
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(CDK_BIN), "synth", "--quiet", "-c", f"dataset_dir={data_dir}", "-o", str(outdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - t0
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cdk synth failed ({proc.returncode}):\n{output[-6000:]}"
    return SynthResult(outdir=outdir, seconds=seconds, output=output)
