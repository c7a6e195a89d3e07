"""CDK fixtures: the app built in-process once per session, and one real ``cdk synth``.

Both need the real Fashion-MNIST files (the data stack verifies their md5 at synth time), so
both take the session's ``data_dir`` fixture and are skipped, with the reason, without them.
The CLI synth also needs the project's npm ``aws-cdk`` (``npm ci`` installs it from
package-lock.json into node_modules/).
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


@dataclass(frozen=True)
class SynthResult:
    """A CLI synth: where the cloud assembly is, how long it took, what the CLI printed."""

    outdir: Path
    seconds: float
    output: str


@pytest.fixture(scope="session")
def cdk_app(data_dir: Path) -> dict[str, object]:
    """The three stacks built in-process (cdk-nag off here; the CLI synth runs it)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import app as cdk_app_module

    app = cdk.App(context={"dataset_dir": str(data_dir), "nag": "false"})
    stacks = cdk_app_module.build(app)
    templates = {name: Template.from_stack(stack) for name, stack in stacks.items()}
    return {"app": app, "stacks": stacks, "templates": templates}


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
    """``cdk synth`` through the project's npm CLI, once per session."""
    if not CDK_BIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm not found: the real CDK CLI cannot be installed (npm ci)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO, check=True, timeout=300)
    outdir = tmp_path_factory.mktemp("cdk") / "cdk.out"
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(CDK_BIN), "synth", "--quiet", "-c", f"dataset_dir={data_dir}", "-o", str(outdir)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - t0
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cdk synth failed ({proc.returncode}):\n{output[-6000:]}"
    return SynthResult(outdir=outdir, seconds=seconds, output=output)
