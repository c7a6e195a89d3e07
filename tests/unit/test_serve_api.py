"""The dashboard's JSON API and its guards, through the ASGI app (no process is started).

Runs that really execute are in ``tests/integration/test_serve_runs.py``; the browser in
``tests/e2e/test_dashboard_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)

from fastapi.testclient import TestClient

from serverless_hpc import driver, targets, workloads
from serverless_hpc.serve import runfiles
from serverless_hpc.serve import runs as runs_mod
from serverless_hpc.serve.app import create_app
from serverless_hpc.serve.cli import allowed_hosts, is_loopback
from serverless_hpc.serve.events import run_events
from serverless_hpc.serve.form import FormError, check_argv, form_to_argv
from serverless_hpc.serve.runs import RunManager
from tests.serve_runs import CONFIG, make_run, three_records

BASE = "http://127.0.0.1:8000"
SUMMARY = (
    "target,workload,shards,mode,median_ms,items_per_s\n"
    "standalone,dataproc,1,natural,140.0,700\n"
    "standalone,dataproc,2,natural,70.5,1400\n"
    "standalone,dataproc,2,cold,300.0,300\n"
)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    make_run(out, "20260101T000000Z-aaaaaa", records=three_records(), summary=SUMMARY, report=True)
    return out


@pytest.fixture
def manager(results: Path) -> RunManager:
    return RunManager(results)


@pytest.fixture
def client(manager: RunManager) -> TestClient:
    return TestClient(create_app(manager), base_url=BASE)


def post(client: TestClient, path: str, body: Any = None, **headers: str) -> Any:
    return client.post(
        path,
        content=json.dumps(body) if body is not None else b"",
        headers={"content-type": "application/json", **headers},
    )


# ---- GET /api/options, /api/runs, /api/runs/{id}


def test_options_come_from_the_registries(client: TestClient) -> None:
    got = client.get("/api/options").json()
    assert got["targets"] == sorted(targets.TARGETS)
    assert [w["name"] for w in got["workloads"]] == list(workloads.specs())
    assert got["defaults"]["workloads"] == list(workloads.default_names())
    assert got["defaults"]["shards"] == [1, 5, 10, 15]


def test_the_api_is_described_and_no_page_loads_from_elsewhere(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/events"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 404  # the interactive docs would load a CDN
    for page in ("/", "/new", "/compare"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html
    script = client.get("/static/app.js").text.replace('"http://www.w3.org/2000/svg"', "")
    assert "http" not in script  # the SVG namespace is a name, not a load


def test_the_runs_list_shows_status_and_no_headline_before_the_report(client: TestClient) -> None:
    # GIVEN a finished terminal run with a summary.csv and no headline.json
    (run,) = client.get("/api/runs").json()["runs"]
    assert run["id"] == "20260101T000000Z-aaaaaa"
    assert run["status"] == "finished"
    assert run["source"] == "terminal"
    assert run["targets"] == ["standalone"] and run["workloads"] == ["dataproc"]
    # THEN there is no headline: only the report writes one (headline.json), none is made up
    assert run["headline"] == []


def test_headline_json_wins_over_the_summary(results: Path, client: TestClient) -> None:
    make_run(
        results,
        "20260102T000000Z-bbbbbb",
        summary=SUMMARY,
        headline=["Lambda is 2.1x faster at 10 shards", {"text": "cold starts add 1.2 s"}],
    )
    runs = client.get("/api/runs").json()["runs"]
    assert [r["id"] for r in runs] == ["20260102T000000Z-bbbbbb", "20260101T000000Z-aaaaaa"]
    assert runs[0]["headline"] == ["Lambda is 2.1x faster at 10 shards", "cold starts add 1.2 s"]
    # the report's shape: {"sentences": [...], "notes": [...], ...}
    make_run(
        results,
        "20260104T000000Z-dddddd",
        summary=SUMMARY,
        headline={"run_id": "x", "sentences": ["FaaS wins below 900 req/h."], "notes": []},
    )
    got = client.get("/api/runs").json()["runs"][0]
    assert got["id"] == "20260104T000000Z-dddddd"
    assert got["headline"] == ["FaaS wins below 900 req/h."]


def test_statuses_of_unfinished_runs(results: Path, tmp_path: Path) -> None:
    # GIVEN runs a server started whose processes are gone (pid/create_time of no process)
    gone = {"pid": os.getpid(), "create_time": 0.0, "exit_code": None}
    make_run(results, "r-interrupted", finished=False, serve=gone)
    make_run(
        results,
        "r-failed",
        with_meta=False,
        serve={**gone, "exit_code": 2},
        log="error: target 'lambda' is unavailable: no credentials\n",
    )
    make_run(
        results,
        "r-cancelled",
        finished=False,
        aborted=True,
        serve={**gone, "cancel_requested": 5.0},
    )
    make_run(results, "r-aborted", finished=False, aborted=True)
    make_run(results, "r-terminal", finished=False)
    mtime = (results / "r-terminal" / "run.json").stat().st_mtime
    # WHEN read just after the terminal run wrote, and long after (injected clock)
    fresh = RunManager(results, clock=lambda: mtime + 10)
    stale = RunManager(results, clock=lambda: mtime + runs_mod.TERMINAL_STALE_S + 1)
    # THEN
    assert fresh.status("r-interrupted")["status"] == "interrupted"
    failed = fresh.status("r-failed")
    assert failed["status"] == "failed"
    assert failed["errors"] == ["error: target 'lambda' is unavailable: no credentials"]
    assert fresh.status("r-cancelled")["status"] == "cancelled"
    assert fresh.status("r-aborted")["status"] == "aborted"
    assert fresh.status("r-terminal")["status"] == "running"
    assert stale.status("r-terminal")["status"] == "interrupted"


def test_files_of_another_shape_say_nothing(results: Path, client: TestClient) -> None:
    run = make_run(results, "r-odd", finished=False, serve={"pid": "x"})
    (run / "run.json").write_text("[1, 2]")
    (run / "headline.json").write_text('"just a string"')
    got = client.get("/api/runs/r-odd")
    assert got.status_code == 200
    assert got.json()["status"] == "failed"  # started here, no process, no plan: never ran
    assert got.json()["planned"] is None and got.json()["headline"] == []


def test_run_detail_counts_progress_against_the_planned_invocations(client: TestClient) -> None:
    got = client.get("/api/runs/20260101T000000Z-aaaaaa").json()
    assert got["planned"] == 3  # run.json's planned_invocations, as the driver wrote it
    assert (got["done"], got["failed"]) == (3, 1)
    assert got["last"]["shards"] == 2 and got["last"]["error"] == "Timeout: no answer"
    assert "result" not in got["last"]


def test_the_planned_count_is_only_what_run_json_says(results: Path, client: TestClient) -> None:
    # GIVEN a run.json without the driver's count, and one with a wrongly typed count
    make_run(results, "r-old", planned=None)
    run = make_run(results, "r-bad")
    meta = json.loads((run / "run.json").read_text())
    meta["planned_invocations"] = "3"
    (run / "run.json").write_text(json.dumps(meta))
    # THEN the page says it does not know, rather than rebuilding a configuration
    assert client.get("/api/runs/r-old").json()["planned"] is None
    assert client.get("/api/runs/r-bad").json()["planned"] is None
    assert client.get("/api/runs/r-bad").json()["status"] == "finished"


def test_no_secret_or_path_reaches_the_page(
    results: Path, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    bodies = [
        client.get("/api/runs").text,
        client.get("/api/runs/20260101T000000Z-aaaaaa").text,
        client.get("/api/options").text,
    ]
    for body in bodies:
        for secret in ("s3cr3t-value-xyz", "/secret/place", "private-bucket", "secret-host"):
            assert secret not in body
    assert str(results) not in "".join(bodies)


@pytest.mark.parametrize(
    "run_id",
    ["..%2F..%2Fetc", "..", ".hidden", "nope", "a%00b", "x" * 200, "%2Fetc%2Fpasswd"],
)
def test_run_ids_outside_the_results_directory_are_not_found(
    client: TestClient, run_id: str
) -> None:
    for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/events", f"/runs/{run_id}/report"):
        got = client.get(path)
        assert got.status_code == 404, path
        assert "error" in got.json()


def test_a_symlinked_run_directory_is_refused(
    results: Path, tmp_path: Path, client: TestClient
) -> None:
    outside = make_run(tmp_path / "elsewhere", "r-out")
    (results / "r-link").symlink_to(outside)
    assert client.get("/api/runs/r-link").status_code == 404
    assert "r-link" not in [r["id"] for r in client.get("/api/runs").json()["runs"]]


# ---- POST /api/runs: every refusal names the field; nothing is created


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ([1, 2], None, "must be a JSON object"),
        ({"out": "/etc"}, "out", "unknown field"),
        ({"target_opt": {"k": "v"}}, "target_opt", "unknown field"),
        ({"targets": ["nope"]}, "targets", "unknown target(s) nope"),
        ({"targets": "standalone;rm -rf"}, "targets", "expected a name"),
        ({"workloads": ["dataproc", "nope"]}, "workloads", "unknown or empty"),
        ({"shards": "1,x"}, "shards", "expected an integer"),
        ({"shards": [0]}, "shards", "--shards must be positive"),
        ({"shards": {"a": 3}}, "shards", "expected a list"),
        ({"repeats": 0}, "repeats", "must be >= 1"),
        ({"repeats": "six"}, "repeats", "expected an integer"),
        ({"repeats": True}, "repeats", "expected an integer"),
        ({"modes": ["warm"]}, "modes", "--modes must be from"),
        ({"memory_mb": 64}, "memory_mb", "memory_mb must be >= 128"),
        ({"memory_mb": "512,x"}, "memory_mb", "expected an integer"),
        ({"concurrency": 0}, "concurrency", "--concurrency must be >= 1"),
        ({"dataproc_split": "validation"}, "dataproc_split", "invalid choice"),
        (
            {"workloads": ["dataproc"], "params": {"classify": {"end": 5}}},
            "params",
            "not in --workloads",
        ),
        (
            {"workloads": ["dataproc"], "params": {"dataproc": {"split": "nope"}}},
            "params",
            "dataproc.split: 'nope' is not one of train, test",
        ),
        ({"params": {"dataproc": 3}}, "params", "expected an object"),
        ({"params": {"dataproc": {"split": ["a"]}}}, "params", "expected a scalar"),
        (
            {
                "workloads": ["dataproc"],
                "shards": [20000],
                "params": {"dataproc": {"split": "test"}},
            },
            "shards",
            "exceed",
        ),
    ],
)
def test_bad_run_requests_get_422_naming_the_field(
    client: TestClient, results: Path, body: Any, field: str | None, fragment: str
) -> None:
    before = sorted(p.name for p in results.iterdir())
    got = post(client, "/api/runs", body)
    assert got.status_code == 422, got.text
    assert got.json()["field"] == field
    assert fragment in got.json()["error"]
    assert sorted(p.name for p in results.iterdir()) == before


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    got = client.post("/api/runs", content=b"{nope", headers={"content-type": "application/json"})
    assert got.status_code == 400
    assert got.json()["error"] == "the request body is not JSON"


def test_a_huge_body_is_413(client: TestClient) -> None:
    got = post(client, "/api/runs", {"targets": ["standalone"] * 20000})
    assert got.status_code == 413
    assert "exceeds" in got.json()["error"]


def test_the_form_becomes_the_cli_argv() -> None:
    argv = form_to_argv(
        {
            "targets": ["standalone", "local-faas"],
            "workloads": "dataproc",
            "shards": "1, 2",
            "repeats": 2,
            "modes": ["natural"],
            "timeout": 30,
            "images": None,
            "params": {"dataproc": {"split": "test", "bins": 8}},
        }
    )
    assert argv == [
        "--targets", "standalone,local-faas", "--workloads", "dataproc", "--shards", "1,2",
        "--repeats", "2", "--modes", "natural", "--timeout", "30.0",
        "--param", 'dataproc.split="test"', "--param", "dataproc.bins=8",
    ]  # fmt: skip
    cfg = check_argv(argv, Path("out"))
    assert cfg.params == {"dataproc": {"split": "test", "bins": 8}}
    assert cfg.settings.timeout_s == 30.0


def test_check_argv_is_the_clis_own_validation() -> None:
    # the same message the terminal prints for the same options
    with pytest.raises(FormError) as err:
        check_argv(["--workloads", "dataproc", "--param", "dataproc.split=nope"], Path("o"))
    assert err.value.field == "params"
    with pytest.raises(driver.BenchError) as cli_err:
        driver.BenchConfig(
            out=Path("o"), workloads=("dataproc",), params={"dataproc": {"split": "nope"}}
        )
    assert str(err.value) == str(cli_err.value)


# ---- guards: host, origin, token


def test_state_changing_requests_from_another_origin_are_refused(client: TestClient) -> None:
    assert post(client, "/api/runs", {}, origin="http://evil.example").status_code == 403
    assert post(client, "/api/runs", {}, origin="http://127.0.0.1:9999").status_code == 403
    got = post(client, "/api/runs", {}, **{"sec-fetch-site": "cross-site"})
    assert got.status_code == 403
    got = post(
        client, "/api/runs/20260101T000000Z-aaaaaa/cancel", None, origin="http://evil.example"
    )
    assert got.status_code == 403
    # the same origin passes the guard (and meets the form's validation)
    assert post(client, "/api/runs", {"repeats": 0}, origin=BASE).status_code == 422


def test_a_foreign_host_header_is_refused(client: TestClient) -> None:
    got = client.get("/api/runs", headers={"host": "attacker.example:8000"})
    assert got.status_code == 403
    assert "attacker.example" in got.json()["error"]
    assert client.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200


def test_with_a_token_every_request_needs_it(manager: RunManager) -> None:
    app = create_app(manager, token="t0k3n", allowed_hosts=frozenset({"*"}))
    c = TestClient(app, base_url="http://10.1.2.3:8000", follow_redirects=False)
    for path in ("/", "/api/runs", "/static/app.js", "/api/runs/20260101T000000Z-aaaaaa/events"):
        assert c.get(path).status_code == 401, path
    assert c.get("/api/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/runs", headers={"authorization": "Bearer t0k3n"}).status_code == 200
    assert c.get("/?token=wrong").status_code == 401
    assert (
        c.get(
            "/api/runs", headers={"authorization": "Bearer t\u00f6ken".encode("latin-1")}
        ).status_code
        == 401
    )
    # ?token= once: a cookie, and the token leaves the address bar
    got = c.get("/compare?base=a&token=t0k3n")
    assert got.status_code == 303
    assert got.headers["location"] == "/compare?base=a"
    assert "httponly" in got.headers["set-cookie"].lower()
    assert "samesite=strict" in got.headers["set-cookie"].lower()
    c.cookies.set("shpc_token", "t0k3n")
    assert c.get("/api/runs").status_code == 200


def test_security_headers_on_pages_and_the_report(client: TestClient) -> None:
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    report = client.get("/runs/20260101T000000Z-aaaaaa/report")
    assert report.status_code == 200 and "<h1>ok</h1>" in report.text
    assert "script-src" not in report.headers["content-security-policy"]  # no script at all
    assert "default-src 'none'" in report.headers["content-security-policy"]


def test_a_run_without_report_has_none(results: Path, client: TestClient) -> None:
    make_run(results, "r-noreport", finished=False)
    assert client.get("/runs/r-noreport/report").status_code == 404


def test_a_run_json_caught_mid_write_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("")  # truncated: the writer has not written yet
    naps: list[float] = []

    def writer_finishes(s: float) -> None:
        naps.append(s)
        path.write_text('{"finished": 1.0}')

    assert runfiles.read_json(path, sleep=writer_finishes) == {"finished": 1.0}
    assert naps == [runfiles.READ_RETRY_S]
    path.write_text("{torn")
    assert runfiles.read_json(path, sleep=lambda s: None) is None


def test_hosts_and_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    assert "*" in allowed_hosts("0.0.0.0")
    assert {"127.0.0.1", "192.0.2.1"} <= allowed_hosts("192.0.2.1")


# ---- cancel and compare refusals


def test_cancel_refusals(client: TestClient) -> None:
    got = post(client, "/api/runs/20260101T000000Z-aaaaaa/cancel")
    assert got.status_code == 409
    assert got.json()["run_id"] == "20260101T000000Z-aaaaaa"
    assert "not going (finished)" in got.json()["error"]
    assert post(client, "/api/runs/nope/cancel").status_code == 404


def test_compare_refusals(manager: RunManager, client: TestClient) -> None:
    assert client.get("/api/compare?base=nope&new=20260101T000000Z-aaaaaa").status_code == 404
    assert client.get("/api/compare?base=20260101T000000Z-aaaaaa").status_code == 422
    # a compare command that fails: its own message, never a traceback
    broken = create_app(
        manager, compare_command=(sys.executable, "-m", "serverless_hpc.cli", "no-such-command")
    )
    got = TestClient(broken, base_url=BASE).get(
        "/api/compare?base=20260101T000000Z-aaaaaa&new=20260101T000000Z-aaaaaa"
    )
    assert got.status_code == 422
    assert "invalid choice: 'no-such-command'" in got.json()["error"]
    assert "Traceback" not in got.text


def test_compare_two_runs(results: Path, client: TestClient) -> None:
    make_run(results, "20260103T000000Z-cccccc", records=three_records(), summary=SUMMARY)
    got = client.get("/api/compare?base=20260101T000000Z-aaaaaa&new=20260103T000000Z-cccccc")
    assert got.status_code == 200, got.text
    body = got.json()
    assert {"base", "new", "rows", "only_in_base", "only_in_new"} <= set(body)
    assert all(
        {"key", "base_median_ms", "new_median_ms", "verdict"} <= set(r) for r in body["rows"]
    )


# ---- events


def _collect(manager: RunManager, run_id: str, **kw: Any) -> list[tuple[str, Any, str | None]]:
    async def go() -> list[str]:
        return [chunk async for chunk in run_events(manager, run_id, **kw)]

    out = []
    for chunk in asyncio.run(go()):
        fields = dict(
            line.split(": ", 1) for line in chunk.strip().splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return out


def test_events_of_a_finished_run_replay_its_records_then_end(manager: RunManager) -> None:
    events = _collect(manager, "20260101T000000Z-aaaaaa", sleep=_no_sleep)
    kinds = [e[0] for e in events]
    assert kinds == ["status", "records", "end"]
    assert events[0][1]["planned"] == 3
    records = events[1][1]
    assert [r["shards"] for r in records["records"]] == [1, 2, 2]
    assert (records["done"], records["failed"]) == (3, 1)
    assert (
        int(events[1][2])
        == (manager.results / "20260101T000000Z-aaaaaa/records.jsonl").stat().st_size
    )
    assert events[2][1] == {"status": "finished"}


def test_events_resume_after_the_last_event_id(manager: RunManager) -> None:
    first = len(three_records()[0].encode())
    events = _collect(manager, "20260101T000000Z-aaaaaa", offset=first, sleep=_no_sleep)
    (records,) = [e for e in events if e[0] == "records"]
    assert [r["shards"] for r in records[1]["records"]] == [2, 2]
    assert records[1]["done"] == 3  # counts include what was sent before


def test_a_forged_last_event_id_resumes_at_a_whole_line_within_the_file(
    manager: RunManager,
) -> None:
    first = len(three_records()[0].encode())
    size = (manager.results / "20260101T000000Z-aaaaaa/records.jsonl").stat().st_size
    # GIVEN an offset in the middle of the second line THEN the stream resumes after the first
    mid = _collect(manager, "20260101T000000Z-aaaaaa", offset=first + 5, sleep=_no_sleep)
    (records,) = [e for e in mid if e[0] == "records"]
    assert [r["shards"] for r in records[1]["records"]] == [2, 2]
    assert records[1]["done"] == 3
    # GIVEN an offset far past the end THEN nothing is replayed, the counts are the file's,
    # and the run's end is still reported (no wait for bytes that will never come)
    past = _collect(manager, "20260101T000000Z-aaaaaa", offset=size * 100, sleep=_no_sleep)
    assert [e[0] for e in past] == ["status", "end"]
    assert (past[0][1]["done"], past[0][1]["failed"]) == (3, 1)


async def _no_sleep(_: float) -> None:
    return None


def test_events_follow_a_growing_file_until_the_run_finishes(results: Path) -> None:
    # GIVEN a running run; the injected sleep appends a record (a torn half first) each tick
    run = make_run(results, "r-live", finished=False)
    manager = RunManager(results, clock=lambda: (run / "run.json").stat().st_mtime)
    lines = three_records()
    ticks = {"n": 0}

    async def tick(_: float) -> None:
        n = ticks["n"]
        ticks["n"] += 1
        with (run / "records.jsonl").open("a") as fh:
            if n < len(lines):
                half = len(lines[n]) // 2
                fh.write(lines[n][:half])
                fh.flush()
                fh.write(lines[n][half:])
        if n == len(lines):
            meta = json.loads((run / "run.json").read_text())
            meta["finished"] = 2.0
            (run / "run.json").write_text(json.dumps(meta))
            os.utime(run / "run.json", (meta["finished"] + 10, meta["finished"] + 10))

    events = _collect(manager, "r-live", sleep=tick, max_s=60.0)
    recs = [e[1] for e in events if e[0] == "records"]
    assert [len(r["records"]) for r in recs] == [1, 1, 1]
    assert [r["done"] for r in recs] == [1, 2, 3]
    assert events[-1] == ("end", {"status": "finished"}, None)
    assert [e[1]["status"] for e in events if e[0] == "status"] == ["running", "finished"]


def test_a_stream_ends_at_its_deadline_with_a_reconnect_event(results: Path) -> None:
    make_run(results, "r-quiet", finished=False)
    now = {"t": 0.0}
    manager = RunManager(results, clock=lambda: (results / "r-quiet/run.json").stat().st_mtime)

    async def tick(s: float) -> None:
        now["t"] += s

    events = _collect(manager, "r-quiet", sleep=tick, clock=lambda: now["t"], max_s=5.0, poll_s=1.0)
    assert events[-1][0] == "reconnect"
    assert now["t"] == 5.0


def test_events_over_http_are_server_sent_events(client: TestClient) -> None:
    with client.stream("GET", "/api/runs/20260101T000000Z-aaaaaa/events") as got:
        assert got.headers["content-type"].startswith("text/event-stream")
        text = "".join(got.iter_text())
    assert "event: records" in text and "event: end" in text
    with client.stream(
        "GET", "/api/runs/20260101T000000Z-aaaaaa/events", headers={"last-event-id": "999999"}
    ) as got:
        assert "event: records" not in "".join(got.iter_text())


# ---- the server process stays light


def test_the_server_imports_no_heavy_library_and_idles_light(results: Path) -> None:
    # a run on every target: counting its planned invocations reads every target class
    # (natural: 3 each; forced cold, 1 repeat of 1+2 shards, where a target supports it)
    every = {
        **CONFIG,
        "targets": ["standalone", "local-faas", "lambda", "ec2", "openwhisk"],
        "modes": ["natural", "cold"],
        "cold_repeats": 1,
    }
    make_run(results, "20260101T000001Z-everyt", config=every, planned=5 * 3 + 3 * 3)
    code = f"""
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from serverless_hpc.serve.app import create_app
from serverless_hpc.serve.runs import RunManager
c = TestClient(create_app(RunManager(Path({str(results)!r}))), base_url={BASE!r})
for p in ("/", "/api/options", "/api/runs", "/api/runs/20260101T000000Z-aaaaaa"):
    assert c.get(p).status_code == 200, p
assert c.get("/api/runs/20260101T000001Z-everyt").json()["planned"] == 5 * 3 + 3 * 3
with c.stream("GET", "/api/runs/20260101T000000Z-aaaaaa/events") as events:
    assert "event: end" in "".join(events.iter_text())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("tensorflow", "ai_edge_litert", "boto3", "botocore", "pygal", "keras"))
# VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"heavy": heavy, "rss_mb": int(hwm) / 1024}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["rss_mb"] < 120


def test_serve_is_a_shpc_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serverless_hpc.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert "--max-runs" in done.stdout and "127.0.0.1" in done.stdout


def _free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_non_loopback_host_gets_a_generated_token_printed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from serverless_hpc.cli import main

    served: list[Any] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: served.append(self.config)
    )
    port = ["--port", str(_free_port())]
    assert main(["serve", "--host", "0.0.0.0", *port, "--results", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    token = err.split("token (required on every request): ")[1].split()[0]
    assert len(token) >= 24 and err.count(token) == 2  # the line and the address to open
    guard = served[0].app
    assert guard.token == token
    assert main(["serve", *port, "--results", str(tmp_path)]) == 0
    assert served[1].app.token is None and "token" not in capsys.readouterr().err


def test_memory_sizes_from_the_form_sweep_like_the_cli() -> None:
    # GIVEN several memory sizes in the form (as text) or one (as a number)
    sweep = form_to_argv({"workloads": "dataproc", "memory_mb": "512, 1769"})
    single = form_to_argv({"workloads": "dataproc", "memory_mb": 1024})
    # THEN the first is the CLI's sweep, the second its single setting
    assert sweep[-2:] == ["--memory-mb", "512,1769"]
    assert check_argv(sweep, Path("out")).memory_mb == (512, 1769)
    cfg = check_argv(single, Path("out"))
    assert cfg.memory_mb == (1024,) and cfg.settings.memory_mb == 1024


def test_one_bad_run_directory_never_breaks_the_list(results: Path, client: TestClient) -> None:
    # GIVEN runs with a mistyped run.json field, a mistyped serve.json, and a FIFO of records
    bad = make_run(results, "20260103T000000Z-badtyp")
    meta = json.loads((bad / "run.json").read_text())
    meta["config"] = {**meta["config"], "targets": 5, "workloads": {"x": 1}}
    meta["started"] = "yesterday"
    (bad / "run.json").write_text(json.dumps(meta))
    (make_run(results, "20260103T000001Z-badsrv") / "serve.json").write_text(
        json.dumps({"pid": "x", "create_time": [], "exit_code": "0"})
    )
    fifo = make_run(results, "20260103T000002Z-fifo")
    os.mkfifo(fifo / "records.jsonl")
    # THEN the list still shows every run, the bad ones with what was wrong
    got = client.get("/api/runs")
    assert got.status_code == 200
    runs = {r["id"]: r for r in got.json()["runs"]}
    assert runs["20260101T000000Z-aaaaaa"]["status"] == "finished"
    assert runs["20260103T000000Z-badtyp"]["targets"] == []
    assert "run.json: field 'started' is not int" in runs["20260103T000000Z-badtyp"]["problems"]
    assert any("'pid'" in p for p in runs["20260103T000001Z-badsrv"]["problems"])
    # AND a FIFO where the records should be is not waited on
    detail = client.get("/api/runs/20260103T000002Z-fifo")
    assert detail.status_code == 200 and detail.json()["done"] == 0


def test_the_runs_list_shows_a_finished_runs_verdict(results: Path, client: TestClient) -> None:
    # GIVEN a finished run whose report wrote a verdict per workload
    verdict = {
        "dataproc": {"sentence": "dataproc: a VM, above 3 jobs an hour.", "side": "vm"},
        "classify": {"sentence": "classify: functions, up to 900 jobs an hour.", "side": "faas"},
    }
    make_run(
        results,
        "20260105T000000Z-verdct",
        headline={"sentences": ["classify: functions ...", "more"], "verdict": verdict},
    )
    (run,) = [r for r in client.get("/api/runs").json()["runs"] if r["id"].endswith("verdct")]
    # THEN the list carries the verdict, one sentence per workload, beside the headline
    assert run["verdict"] == [
        "classify: functions, up to 900 jobs an hour.",
        "dataproc: a VM, above 3 jobs an hour.",
    ]
    assert run["headline"] == ["classify: functions ...", "more"]
    # AND a run whose report wrote none has an empty verdict, not an error
    assert client.get("/api/runs/20260101T000000Z-aaaaaa").json()["verdict"] == []
