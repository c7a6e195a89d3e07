"""The dashboard under hostile input and files: bounded, never hanging, never leaking.

Each test sends one bad request or plants one bad file in the results directory (a FIFO, a
symlink to a secret, a 20,000-deep JSON body, a huge header...) and checks the answer is a
clean 4xx, bounded in time, with nothing secret in it or in the server's log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from fastapi.testclient import TestClient

from serverless_hpc.serve.app import create_app
from serverless_hpc.serve.bounds import json_depth_exceeds, last_event_offset
from serverless_hpc.serve.runs import RunManager
from tests.faults.conftest import EXIT_DEADLINE_S, shpc_env
from tests.serve_runs import make_run, three_records

BASE = "http://127.0.0.1:8000"
RUN = "20260101T000000Z-aaaaaa"
SHPC = (sys.executable, "-m", "serverless_hpc.cli")
#: A request against a planted FIFO must answer well within this (it would block forever).
ANSWER_DEADLINE_S = 30.0


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    make_run(out, RUN, records=three_records(), report=True)
    return out


@pytest.fixture
def client(results: Path) -> TestClient:
    return TestClient(create_app(RunManager(results)), base_url=BASE)


def _bounded(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(ANSWER_DEADLINE_S)
    assert box, f"no answer within {ANSWER_DEADLINE_S} s: the request blocked"
    return box[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- bounded input ---------------------------------------------------------------------


def test_a_20000_deep_json_body_is_a_400(client: TestClient) -> None:
    body = b"[" * 20_000 + b"]" * 20_000
    got = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert got.status_code == 400
    assert "nests deeper than 32 levels" in got.json()["error"]


def test_the_depth_scan_ignores_brackets_inside_strings() -> None:
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[\\"[[[[["}', 3)
    assert json_depth_exceeds(b'{"a": [[[1]]]}', 3)


@pytest.mark.parametrize("value", ["9" * 5000, "\u00b2", "\u0661\u0662", "-5", "1e9", " 12"])
def test_a_huge_or_non_ascii_last_event_id_is_ignored(client: TestClient, value: str) -> None:
    # GIVEN a finished run WHEN its events are asked for with this Last-Event-ID
    assert last_event_offset(value) == 0
    got = _bounded(
        lambda: client.get(
            f"/api/runs/{RUN}/events", headers={"last-event-id": value.encode("utf-8")}
        )
    )
    # THEN the stream starts from the beginning and ends cleanly
    assert got.status_code == 200
    assert "event: end" in got.text and '"done":3' in got.text


def test_an_offset_beyond_the_file_resumes_at_its_end(client: TestClient) -> None:
    got = _bounded(
        lambda: client.get(f"/api/runs/{RUN}/events", headers={"last-event-id": "9" * 18})
    )
    assert got.status_code == 200 and "event: end" in got.text


def test_oversized_headers_are_refused(client: TestClient) -> None:
    got = client.get("/api/runs", headers={"x-filler": "a" * 20_000})
    assert got.status_code == 431


def test_an_empty_token_is_refused_and_an_empty_cookie_never_matches(results: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        create_app(RunManager(results), token="")
    app = create_app(RunManager(results), token="t0k3n-value", allowed_hosts=frozenset({"*"}))
    c = TestClient(app, base_url=BASE, follow_redirects=False)
    c.cookies.set("shpc_token", "")
    assert c.get("/api/runs").status_code == 401
    assert c.get("/api/runs", headers={"authorization": "Bearer "}).status_code == 401
    assert c.get("/?token=").status_code == 401


# -- files in a run directory ----------------------------------------------------------


def test_a_report_symlinked_to_a_secret_is_not_served(results: Path, tmp_path: Path) -> None:
    # GIVEN a report.html that is a link to a credentials file outside the results
    secret = tmp_path / "wskprops"
    secret.write_text("AUTH=23bc46b1-71f6-4ed5-8c54-816aa4f8c502:the-secret-half\n")
    report = results / RUN / "report.html"
    report.unlink()
    report.symlink_to(secret)
    client = TestClient(create_app(RunManager(results)), base_url=BASE)
    # WHEN the report is asked for THEN it is refused and nothing of the file is sent
    got = client.get(f"/runs/{RUN}/report")
    assert got.status_code in (403, 404)
    assert "the-secret-half" not in got.text
    assert "outside the results directory" in got.json()["error"]


def test_a_report_symlinked_within_the_run_is_refused_too(results: Path) -> None:
    run = results / RUN
    (run / "real.html").write_text("<p>x</p>")
    (run / "report.html").unlink()
    (run / "report.html").symlink_to(run / "real.html")
    client = TestClient(create_app(RunManager(results)), base_url=BASE)
    got = client.get(f"/runs/{RUN}/report")
    assert got.status_code == 403 and "symbolic link" in got.json()["error"]


def test_a_regular_report_is_still_served(client: TestClient) -> None:
    got = client.get(f"/runs/{RUN}/report")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "name", ["run.json", "serve.json", "records.jsonl", "summary.csv", "headline.json", "serve.log"]
)
def test_a_fifo_in_a_run_directory_hangs_no_request(results: Path, name: str) -> None:
    # GIVEN one run whose file is a FIFO nobody writes to, next to a good run
    make_run(results, "20260102T000000Z-bbbbbb", records=three_records())
    path = results / RUN / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    client = _bounded(lambda: TestClient(create_app(RunManager(results)), base_url=BASE))
    # WHEN the list, the run and its events are asked for, many times (more than the
    # thread pool's 40 workers, were each to block)
    for _ in range(50):
        listing = _bounded(lambda: client.get("/api/runs"))
        assert listing.status_code == 200
    # THEN every answer came, the good run is listed as it is, the bad one is listed too
    runs = {r["id"]: r for r in listing.json()["runs"]}
    assert runs["20260102T000000Z-bbbbbb"]["status"] == "finished"
    assert RUN in runs
    # (the event stream of a run whose status cannot be read as over stays open, polling:
    # that is a live stream, not a blocked read; it is checked below where it must end)
    for url in (f"/api/runs/{RUN}", f"/runs/{RUN}/report"):
        got = _bounded(lambda url=url: client.get(url))
        assert got.status_code < 500, (url, got.text)
    if name in ("headline.json", "serve.log"):  # read with a plain open: refused up front
        assert runs[RUN]["status"] == "unreadable" and name in runs[RUN]["errors"][0]
        got = _bounded(lambda: client.get(f"/api/runs/{RUN}"))
        assert got.status_code == 422 and "FIFO" in got.json()["error"]
    if name == "records.jsonl":  # the event stream says what is wrong and ends
        got = _bounded(lambda: client.get(f"/api/runs/{RUN}/events"))
        assert "event: error" in got.text and "not a regular file but a FIFO" in got.text
    got = _bounded(lambda: client.get(f"/api/compare?base={RUN}&new=20260102T000000Z-bbbbbb"))
    assert got.status_code == 422 and name in got.json()["error"]


# -- the server process ----------------------------------------------------------------


def _serve(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", "serve", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE_S,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "70000"], "a port is 1-65535, got 70000"),
        (["--port", "x" * 100], "expected a port number"),
        (["--token", ""], "the token must not be empty"),
        (["--token", "   "], "the token must not be empty"),
    ],
)
def test_bad_serve_options_exit_2_with_an_error_line(
    tmp_path: Path, args: list[str], named: str
) -> None:
    done = _serve(args, shpc_env(tmp_path), tmp_path)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr and named in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_exits_2_with_an_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(
            ["--port", str(port), "--results", str(tmp_path / "r")], shpc_env(tmp_path), tmp_path
        )
    assert done.returncode == 2, done.stderr
    assert f"error: cannot listen on 127.0.0.1 port {port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_access_log_never_shows_the_token(tmp_path: Path) -> None:
    # GIVEN a server with a token and the access log on (-vv)
    token = "s3cr3t-dashboard-token-value"
    port = _free_port()
    results = tmp_path / "results"
    make_run(results, RUN, records=three_records())
    proc = subprocess.Popen(
        [*SHPC, "-vv", "serve", "--port", str(port), "--token", token, "--results", str(results)],
        env=shpc_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/options", timeout=5)
            except urllib.error.HTTPError:
                break  # 401: it is up
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
                continue
            break
        # WHEN the token is sent in the query string, a cookie and a header
        opener = urllib.request.build_opener(_NoRedirect)
        for request in (
            urllib.request.Request(f"{base}/?token={token}"),
            urllib.request.Request(f"{base}/api/runs", headers={"Cookie": f"shpc_token={token}"}),
            urllib.request.Request(f"{base}/api/runs?x=1&token={token}"),
        ):
            with contextlib.suppress(urllib.error.HTTPError):  # a 303: the log matters
                opener.open(request, timeout=10)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    # THEN the access log has the requests, never the token
    assert "GET /?token=[REDACTED]" in err, err
    assert token not in err


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
