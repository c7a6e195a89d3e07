"""Browser fixtures: a real ``shpc serve`` process and the system's headless Chromium.

Playwright drives ``/usr/bin/chromium`` (Debian's package, installed by ``.ci/run``); no
browser is ever downloaded. Without Chromium or the playwright package the tests skip,
saying which is missing. Screenshots go to ``test-artifacts/e2e/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 90.0


def chromium_path() -> str | None:
    """The system's Chromium, if installed."""
    for cand in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one test module.

    Module-scoped, not session-scoped: while Playwright's sync API is open, its event loop
    counts as running in the main thread, and every later test calling ``asyncio.run``
    (the dashboard's event-stream tests) would fail.
    """
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (dev extra)"
    )
    exe = chromium_path()
    if exe is None:
        pytest.skip(
            "no system Chromium (/usr/bin/chromium): install Debian's 'chromium' package "
            "(.ci/run does); Playwright's own browser download is not used"
        )
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shot(page: Any, name: str) -> Path:
    """Keep a screenshot of ``page`` as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Server:
    """A running ``shpc serve`` and its results directory."""

    url: str
    results: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(results: Path, *extra: str) -> Server:
    """Start ``shpc serve`` on a free loopback port and wait (bounded) until it answers."""
    port = _free_port()
    log = (results.parent / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serverless_hpc.cli",
            "serve",
            "--results",
            str(results),
            "--port",
            str(port),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    headers = (
        {"authorization": f"Bearer {extra[extra.index('--token') + 1]}"}
        if "--token" in extra
        else {}
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shpc serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"{url}/api/options", headers=headers), timeout=5
            ):
                return Server(url, results, proc)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"shpc serve did not answer within {SERVER_START_S:g} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started (its process group, by its own id)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("FASHION_MNIST_DIR", str(data_dir))
    srv = start_server(tmp_path / "results")
    yield srv
    stop_server(srv.process)
