"""The dashboard in a real headless Chromium, against a real ``shpc serve`` and real runs.

Each page visited is kept as a screenshot under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)

from tests.e2e.conftest import Server, shot, start_server, stop_server
from tests.serve_runs import make_run, record_line

pytestmark = [pytest.mark.browser, pytest.mark.integration]

#: A run finishes in seconds here; the bound is for a loaded 2-core machine.
RUN_DEADLINE_MS = 240_000
SMALL_ARGV = [
    "--targets", "standalone", "--workloads", "dataproc", "--param", "dataproc.split=test",
    "--shards", "1,2", "--repeats", "1", "--modes", "natural", "-q",
]  # fmt: skip


def _terminal_run(results: Path, run_id: str) -> None:
    """A run made from the terminal, as a user would (`shpc bench --out results/ID`)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "serverless_hpc.cli",
            "bench",
            *SMALL_ARGV,
            "--run-id",
            run_id,
            "--out",
            str(results / run_id),
        ],
        check=True,
        capture_output=True,
        timeout=RUN_DEADLINE_MS / 1000,
    )


def test_start_a_run_from_the_form_watch_it_reach_100_percent_and_open_its_report(
    server: Server, page: Any
) -> None:
    # GIVEN the form, filled in with a small plan
    page.goto(f"{server.url}/new")
    page.wait_for_selector("#run-form")
    for box in page.query_selector_all("input[name=targets]"):
        box.set_checked(box.get_attribute("value") == "standalone")
    for box in page.query_selector_all("input[name=workloads]"):
        box.set_checked(box.get_attribute("value") == "dataproc")
    for box in page.query_selector_all("input[name=modes]"):
        box.set_checked(box.get_attribute("value") == "natural")
    page.fill("#f-shards", "1,2")
    page.fill("#f-repeats", "1")
    page.fill("#f-params", "dataproc.split=test")
    shot(page, "1-new-run-form")
    # WHEN started
    page.click("#start")
    page.wait_for_url(f"{server.url}/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    page.reload()  # the run does not depend on the page: the stream resumes after a reload
    # THEN progress is pushed to the page until 100 %, and the chart fills in
    page.wait_for_selector('#counts[data-pct="100"]', timeout=RUN_DEADLINE_MS)
    page.wait_for_selector("body[data-ended=finished]", timeout=RUN_DEADLINE_MS)
    assert page.inner_text("#counts").startswith("3 of 3 invocations (100%), 0 failed")
    assert page.get_attribute("#chart", "data-points") == "3"
    assert page.inner_text("#status") == "finished"
    # a colour per target in the legend, a panel per workload in the chart
    assert "standalone" in page.inner_text(".legend")
    assert page.locator('#chart g.panel[data-workload="dataproc"]').count() == 1
    assert "latest batch: standalone dataproc \u00d7 2 shard(s)" in page.inner_text("#latest")
    # the report is shown on the page, sandboxed
    frame = page.frame_locator("#report-frame")
    assert run_id in frame.locator("h1").inner_text()
    assert page.get_attribute("#report-frame", "sandbox") == ""
    # and its charts (SVG as data: images) load under the report's CSP, in the sandbox
    widths = frame.locator("img").evaluate_all("els => els.map(e => e.complete && e.naturalWidth)")
    assert widths and all(widths), widths
    shot(page, "2-run-finished")
    page.locator("#report-frame").screenshot(path=str(shot(page, "2b-report-in-page")))
    # the run is the terminal's: same files in the results directory
    assert (server.results / run_id / "records.jsonl").read_text().count("\n") == 3
    # WHEN the report is opened THEN it is the run's report.html
    page.click("#report-link")
    page.wait_for_url(f"{server.url}/runs/{run_id}/report")
    assert run_id in page.inner_text("h1")
    shot(page, "3-report")
    # and the runs list shows it, finished, with its verdict (functions or a VM) first
    page.goto(server.url)
    row = page.wait_for_selector(f'tr[data-run="{run_id}"]')
    text = row.inner_text()
    assert "finished" in text and "dataproc at" in text and "jobs/h" in text
    shot(page, "4-runs-list")


def _two_runs(server: Server) -> tuple[str, str]:
    base, new = "20260101T000000Z-base01", "20260101T000001Z-new002"
    _terminal_run(server.results, base)
    _terminal_run(server.results, new)
    return base, new


def _pick_and_compare(page: Any, server: Server, base: str, new: str) -> None:
    page.goto(server.url)
    page.check(f'tr[data-run="{base}"] input[type=checkbox]')
    page.check(f'tr[data-run="{new}"] input[type=checkbox]')
    page.click("text=Compare the two selected")
    page.wait_for_url(f"{server.url}/compare?*")
    page.wait_for_selector("#result :is(table, .error, .notice)")


def test_compare_two_runs(server: Server, page: Any) -> None:
    base, new = _two_runs(server)
    _pick_and_compare(page, server, base, new)
    shot(page, "5-compare")
    assert page.query_selector("#comparison") is not None, page.inner_text("#result")
    assert page.query_selector_all("#comparison tbody tr")
    text = page.inner_text("#result")
    assert f"base {base}" in text and f"new {new}" in text
    assert "null" not in text and "undefined" not in text


def test_cancel_from_the_run_page(server: Server, page: Any) -> None:
    body = {
        "targets": ["standalone"],
        "workloads": ["sleep"],
        "params": {"sleep": {"seconds": 0.5}},
        "shards": [1],
        "repeats": 200,
        "modes": ["natural"],
    }
    request = urllib.request.Request(
        f"{server.url}/api/runs",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as got:
        run_id = json.load(got)["id"]
    page.goto(f"{server.url}/runs/{run_id}")
    # the first record has arrived (the page's CSP allows no eval, so no wait_for_function)
    page.wait_for_selector("#latest:not(:empty)", timeout=RUN_DEADLINE_MS)
    page.click("#cancel")
    page.wait_for_selector("body[data-ended=cancelled]", timeout=RUN_DEADLINE_MS)
    assert page.inner_text("#status") == "cancelled"
    assert page.is_hidden("#cancel")
    assert "Its records are kept" in page.inner_text("#no-report")
    shot(page, "6-run-cancelled")


def test_strings_from_records_and_headlines_are_shown_as_text(tmp_path: Path, page: Any) -> None:
    # GIVEN a run whose records and headline carry markup (fixture data)
    evil = '<img src=x onerror="document.body.dataset.pwned=1">'
    results = tmp_path / "results"
    make_run(
        results,
        "20260101T000000Z-evil00",
        config={
            "targets": ["standalone"],
            "workloads": ["dataproc"],
            "shards": [1],
            "repeats": 1,
            "train_repeats": 1,
            "modes": ["natural"],
            "cold_repeats": 1,
            "params": {},
        },
        records=[record_line(target=evil, ok=False, error=evil)],
        headline=[f"<script>document.body.dataset.pwned=2</script>{evil}"],
    )
    srv = start_server(results)
    try:
        page.goto(srv.url)
        page.wait_for_selector('tr[data-run="20260101T000000Z-evil00"]')
        assert evil in page.inner_text("#runs")
        page.goto(f"{srv.url}/runs/20260101T000000Z-evil00")
        page.wait_for_selector("body[data-ended]")
        assert evil in page.inner_text("#latest")
        assert page.inner_text("#last-error").endswith(f"shard 0 of 1: Timeout: {evil}")
        shot(page, "7-markup-shown-as-text")
        assert page.evaluate("document.body.dataset.pwned") is None
        assert (
            page.query_selector("main img") is None and page.query_selector("main script") is None
        )
    finally:
        stop_server(srv.process)


def test_a_token_is_asked_once_then_kept_in_a_cookie(tmp_path: Path, page: Any) -> None:
    results = tmp_path / "results"
    make_run(results, "20260101T000000Z-tok000", records=[record_line()])
    srv = start_server(results, "--token", "tok-123")
    try:
        page.goto(srv.url)
        assert "a valid token is required" in page.inner_text("body")
        page.goto(f"{srv.url}/?token=tok-123")
        assert page.url == f"{srv.url}/"
        page.wait_for_selector('tr[data-run="20260101T000000Z-tok000"]')
        # the event stream (EventSource: no headers) works with the cookie too
        page.goto(f"{srv.url}/runs/20260101T000000Z-tok000")
        page.wait_for_selector("body[data-ended]")
        assert page.inner_text("#counts").startswith("1 of 3 invocations (33%)")
    finally:
        stop_server(srv.process)
