"""``shpc serve``: idle memory, and the latency from a record appended to the page updated.

Starts a real ``shpc serve`` over a temporary results directory holding RUNS made-up runs
(synthetic records in the driver's own format, not measurements), visits every API route
once, lets it idle, and reads its VmRSS/VmHWM from /proc. Then, against a run left open
(no ``finished`` in run.json), appends one record at a time and measures:

* **SSE**: record appended -> the ``records`` event carrying it parsed by a client;
* **browser** (when /usr/bin/chromium and playwright are installed): record appended -> the
  run page's chart redrawn with it (headless Chromium, Playwright's selector wait).

The server polls the records file every 0.2 s (``serve.events.POLL_S``), which bounds the
expected latency: about half the poll interval on average, one interval at worst.

Usage: python benchmarks/serve_idle.py [--runs 20] [--events 40]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import InvocationRecord

CONFIG = {
    "targets": ["standalone"],
    "workloads": ["dataproc"],
    "shards": [1, 5, 10],
    "repeats": 200,
    "train_repeats": 1,
    "modes": ["natural"],
    "cold_repeats": 1,
    "params": {"dataproc": {"split": "test"}},
    "settings": {},
}


def _record(i: int) -> str:
    response = {"ok": True, "result": {}, "timings": {"load_ms": 1.0, "compute_ms": 30.0}}
    rec = InvocationRecord(
        run_id="bench", target="standalone", workload="dataproc", shard=i % 5, shards=5,
        items=2000, repeat=i // 5, mode="natural", client_ms=40.0 + i % 7, t_send=1.0,
        t_recv=1.04, outcome=Outcome(response=response, cold=False),
        result={"classes": [{"hist": list(range(16))}] * 10},
    )  # fmt: skip
    return rec.to_json() + "\n"


def _make_run(results: Path, run_id: str, records: int, *, finished: bool) -> Path:
    out = results / run_id
    out.mkdir(parents=True)
    meta: dict[str, Any] = {"run_id": run_id, "config": CONFIG, "started": time.time()}
    if finished:
        meta["finished"] = time.time()
    (out / "run.json").write_text(json.dumps(meta))
    (out / "records.jsonl").write_text("".join(_record(i) for i in range(records)))
    (out / "summary.csv").write_text(
        "target,workload,shards,mode,median_ms,items_per_s\n"
        "standalone,dataproc,10,natural,41.0,48000\n"
    )
    return out


def _status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {path}: HTTP {resp.status}")
        return body
    finally:
        conn.close()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"shpc serve exited with {proc.returncode}")
        try:
            _get(port, "/api/options")
        except OSError:
            time.sleep(0.2)
        else:
            return
    raise SystemExit(f"shpc serve did not answer within {deadline_s:g} s")


def _sse_latency(port: int, run_dir: Path, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/runs/{run_dir.name}/events")
    resp = conn.getresponse()
    done = 0

    def next_records() -> int:
        event = None
        while True:
            line = resp.readline().decode()
            if not line:
                raise SystemExit("event stream closed")
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "records":
                return int(json.loads(line[6:])["done"])

    done = next_records()  # the history
    latencies = []
    with (run_dir / "records.jsonl").open("a") as fh:
        for i in range(n):
            t0 = time.perf_counter()
            fh.write(_record(done + i))
            fh.flush()
            got = next_records()
            latencies.append((time.perf_counter() - t0) * 1e3)
            if got != done + i + 1:
                raise SystemExit(f"expected {done + i + 1} records, the stream says {got}")
            time.sleep(random.uniform(0.0, 0.25))  # noqa: S311 - a random phase of the poll
    conn.close()
    return latencies


def _browser_latency(url: str, run_dir: Path, n: int) -> list[float] | str:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright not installed"
    if not Path(exe).is_file():
        return "no system Chromium"
    args = [
        "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    latencies = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=args)
        page = browser.new_page()
        page.goto(f"{url}/runs/{run_dir.name}")
        start = len((run_dir / "records.jsonl").read_text().splitlines())
        page.wait_for_selector(f'#chart[data-points="{start}"]', timeout=60_000)
        with (run_dir / "records.jsonl").open("a") as fh:
            for i in range(n):
                t0 = time.perf_counter()
                fh.write(_record(start + i))
                fh.flush()
                page.wait_for_selector(f'#chart[data-points="{start + i + 1}"]', timeout=60_000)
                latencies.append((time.perf_counter() - t0) * 1e3)
                time.sleep(random.uniform(0.0, 0.25))  # noqa: S311 - a random phase of the poll
        browser.close()
    return latencies


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="made-up runs in the results dir")
    parser.add_argument("--records", type=int, default=300, help="records per made-up run")
    parser.add_argument("--events", type=int, default=40, help="records appended per method")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        for i in range(args.runs):
            _make_run(results, f"20260101T{i:06d}Z-made{i:02d}", args.records, finished=True)
        live = _make_run(results, "20260102T000000Z-live00", 10, finished=False)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
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
            ],
            start_new_session=True,
        )
        try:
            _wait_ready(port, proc)
            after_start = _status(proc.pid)
            for path in ("/", "/new", "/static/app.js", "/api/runs", "/api/options"):
                _get(port, path)
            for i in range(args.runs):
                _get(port, f"/api/runs/20260101T{i:06d}Z-made{i:02d}")
            time.sleep(args.idle)
            idle = _status(proc.pid)
            sse = _sse_latency(port, live, args.events)
            browser = _browser_latency(url, live, args.events)
            after = _status(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
    print(
        json.dumps(
            {
                "runs_in_results": args.runs + 1,
                "rss_mb_after_start": round(after_start["VmRSS"], 1),
                "rss_mb_idle_after_visiting_every_route": round(idle["VmRSS"], 1),
                "rss_mb_after_the_latency_runs": round(after["VmRSS"], 1),
                "peak_rss_mb": round(after["VmHWM"], 1),
                "event_latency_sse": _summary(sse),
                "event_latency_browser": _summary(browser)
                if isinstance(browser, list)
                else f"skipped: {browser}",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
