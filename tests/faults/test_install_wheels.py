"""Installs where users are: every pin resolves as a wheel for every admitted Python.

``requires-python`` promises that ``pip install`` works on each admitted version; a pin with
no wheel there would send pip to build from source (or fail) on the user's machine. Asked of
the package index with pip's own resolver for a foreign interpreter and platform
(``--python-version``/``--platform``/``--only-binary=:all:``). ``pip install --dry-run``
resolves exactly as ``pip download`` does but reads only the wheels' metadata, so the check
does not fetch TensorFlow's 250 MB three times. Skipped, saying so, when no index answers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
#: Each pip call is bounded; metadata-only resolution takes seconds.
PIP_TIMEOUT_S = 300
X86_64 = (
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
)
AARCH64 = (
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
)

pytestmark = pytest.mark.registry


def admitted_versions() -> list[str]:
    """The 3.x minor versions ``requires-python`` admits (among those that exist or will)."""
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    return [f"3.{m}" for m in range(8, 20) if spec.contains(f"3.{m}.0")]


def pins(*, base_only: bool = False) -> list[str]:
    """Every pinned requirement (``name==version``, extras dropped), base and extras."""
    groups = [PYPROJECT["project"]["dependencies"]]
    if not base_only:
        groups += PYPROJECT["project"]["optional-dependencies"].values()
    out: set[str] = set()
    for group in groups:
        for text in group:
            req = Requirement(text)
            assert str(req.specifier).startswith("=="), f"{text} is not pinned with =="
            out.add(f"{req.name}{req.specifier}")
    return sorted(out)


def _pip(
    python: str, platforms: tuple[str, ...], reqs: list[str], *, deps: bool, tmp: Path
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    argv += ["--only-binary=:all:", "--python-version", python, "--target", str(tmp / "t")]
    argv += ["--disable-pip-version-check", "--no-input"]
    for plat in platforms:
        argv += ["--platform", plat]
    if not deps:
        argv.append("--no-deps")
    return subprocess.run(
        argv + reqs, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory, once the index has answered for one small wheel; else skip."""
    tmp = tmp_path_factory.mktemp("pip")
    try:
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--no-input",
                "-d",
                str(tmp / "probe"),
                "tqdm==4.70.1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"no package index reachable: {exc}")
    if probe.returncode != 0:
        pytest.skip(f"no package index reachable: {probe.stderr.strip().splitlines()[-1:]}")
    return tmp


def test_requires_python_admits_the_versions_users_have() -> None:
    # Ubuntu 24.04 ships 3.12, Debian 13 ships 3.13; the pins support 3.11 to 3.13
    assert admitted_versions() == ["3.11", "3.12", "3.13"]


@pytest.mark.parametrize("python", admitted_versions())
def test_every_pin_is_a_wheel_on_x86_64(python: str, registry: Path) -> None:
    # WHEN every pin (base and extras) is resolved for this Python on x86_64, wheels only
    done = _pip(python, X86_64, pins(), deps=False, tmp=registry)
    # THEN pip finds each one
    assert done.returncode == 0, f"Python {python} x86_64: {_why(done)}"
    assert "Would install" in done.stdout


@pytest.mark.parametrize("python", admitted_versions())
def test_the_driver_install_resolves_as_wheels_on_aarch64(python: str, registry: Path) -> None:
    # WHEN the base (driver-only) install is resolved with its dependencies on aarch64
    done = _pip(python, AARCH64, pins(base_only=True), deps=True, tmp=registry)
    # THEN every package of it, transitive ones included, has a wheel there
    assert done.returncode == 0, f"Python {python} aarch64: {_why(done)}"
    assert "Would install" in done.stdout


def _why(done: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in done.stderr.splitlines() if re.match(r"ERROR", ln)]
    return "\n".join(lines[-3:]) or done.stderr[-500:]
