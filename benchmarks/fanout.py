"""Fan-out dispatch: can the driver hold a 1,000-way batch in flight, and at what cost?

Runs batches of a function that takes ``--delay`` seconds (default 0.2) against loopback
test doubles, never a cloud, and reports per batch: the peak number of requests in flight
(counted by the double), the batch's makespan, the driver's CPU per invocation (user +
system, every thread and dispatch process of the driver) and the driver's peak RSS. Each
measurement runs in a fresh driver process (so the RSS is that batch's), the double in a
process of its own (its CPU is not the driver's).

Dispatch ways (``--ways``), the same requests each:

* ``lambda``: the ``lambda`` target as the driver runs it (``invoke_batch``: signed
  requests over one async HTTP pool, :mod:`serverless_hpc.targets.lambda_dispatch`);
* ``boto3-threads``: ``boto3``'s ``invoke`` from a thread per request in flight, with a
  connection pool as wide (the dispatch before, tuned: no 64 cap, pool = fan-out);
* ``boto3-processes``: the same split over ``--processes`` dispatch processes;
* ``openwhisk``: the ``openwhisk`` target's fan-out against the controller double
  (``tests/doubles/openwhisk_controller.py``, simulated actions), with ``--throttle``
  making it answer 429 to that share of the invocations.

Usage (from the repository root, with the ``aws`` and ``openwhisk`` extras)::

    python benchmarks/fanout.py --fanouts 10,100,1000 --repeat 3
    python benchmarks/fanout.py --ways openwhisk --throttle 0,0.5 --fanouts 1000

Prints a Markdown table (medians over ``--repeat`` runs; min-max in brackets).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAYS = ("lambda", "boto3-threads", "boto3-processes", "openwhisk")


def _request(i: int) -> dict[str, Any]:
    return {"workload": "classify", "params": {"start": i * 10, "end": i * 10 + 10}}


def _cpu_s() -> float:
    """This process's CPU seconds so far (user + system, every thread; microseconds)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _double_cpu_s() -> float:
    """The double's CPU seconds so far (its pid in ``SHPC_BENCH_DOUBLE_PID``), from /proc."""
    pid = os.environ.get("SHPC_BENCH_DOUBLE_PID")
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_double/stats", timeout=10) as resp:  # noqa: S310 - loopback
        return dict(json.load(resp))


def _reset(url: str) -> None:
    req = urllib.request.Request(url + "/_double/reset", method="POST", data=b"")  # noqa: S310
    with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - the double on loopback
        pass


def _aws_env(url: str) -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - the double checks no signature
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_LAMBDA=url,
    )


@functools.cache
def _boto3_client(url: str, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": 0, "mode": "standard"},
        max_pool_connections=pool,
        read_timeout=60,
    )
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1", config=cfg)


def _threads(url: str, indices: list[int], pool: int) -> tuple[int, float]:
    """Invoke ``indices`` with boto3, a thread each; (failed, this process's CPU seconds)."""
    client = _boto3_client(url, pool)
    cpu0 = _cpu_s()
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(len(indices)) as threads:
        futures = [
            threads.submit(
                client.invoke,
                FunctionName="fn-classify",
                InvocationType="RequestResponse",
                LogType="Tail",
                Payload=json.dumps(_request(i)).encode(),
            )
            for i in indices
        ]
        for f in futures:
            resp = f.result()
            resp["Payload"].read()
            failed += resp.get("StatusCode") != 200
    return failed, _cpu_s() - cpu0


def _process_worker(url: str, indices: list[int], pool: int, start_at: float) -> tuple:
    """A dispatch process: (failed, CPU seconds for its share, its own peak RSS in MB)."""
    _boto3_client(url, pool)  # import and load the service model before the start
    time.sleep(max(start_at - time.time(), 0.0))
    failed, cpu = _threads(url, indices, pool)
    return failed, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lambda_target(url: str) -> Any:
    _aws_env(url)
    from serverless_hpc import workloads
    from serverless_hpc.targets.aws_lambda import LambdaTarget
    from serverless_hpc.targets.base import TargetSettings

    extra = {f"function.{w}": f"fn-{w}" for w in workloads.names()}
    extra["architecture"] = "x86_64"
    target = LambdaTarget(TargetSettings(extra=extra))
    target.open()
    return target


def _openwhisk_target() -> Any:
    from serverless_hpc.targets.base import TargetSettings
    from serverless_hpc.targets.openwhisk import OpenWhiskTarget

    target = OpenWhiskTarget(TargetSettings())
    target.open()
    return target


def _target_batch(target: Any, requests: list[dict[str, Any]]) -> tuple[int, int, float]:
    """(failed, 429s counted, CPU seconds) of one batch through a target's fan-out."""
    cpu0 = _cpu_s()
    if target.batch_native:
        outcomes = [t.outcome for t in target.invoke_batch(requests, timeout_s=60)]
    else:  # the driver's way: a thread per request in flight
        workers = min(len(requests), target.max_parallel)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(lambda r: target.invoke(r, timeout_s=60), requests))
    cpu = _cpu_s() - cpu0
    return sum(not o.ok for o in outcomes), sum(o.throttled for o in outcomes), cpu


def one(way: str, url: str, fanout: int, processes: int, batches: int) -> list[dict[str, Any]]:
    """``batches`` batches in this (fresh) process, one client; each batch's figures."""
    requests = [_request(i) for i in range(fanout)]
    target: Any = None
    if way == "lambda":
        target = _lambda_target(url)
        target.max_parallel  # noqa: B018 - reads the account's limit before the timing
    elif way == "openwhisk":
        target = _openwhisk_target()
    elif way.startswith("boto3"):
        _aws_env(url)
    else:
        raise SystemExit(f"error: unknown way {way!r}")
    pool = None
    if way == "boto3-processes":
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        pool = concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx)
    out = []
    children_rss = 0.0
    for n in range(batches):
        _reset(url)
        throttled = 0
        double0 = _double_cpu_s()
        t0 = time.perf_counter()
        if target is not None:
            failed, throttled, cpu = _target_batch(target, requests)
        elif pool is None:
            _boto3_client(url, fanout)
            t0 = time.perf_counter()
            failed, cpu = _threads(url, list(range(fanout)), fanout)
        else:
            parts = [p for p in (list(range(fanout))[i::processes] for i in range(processes)) if p]
            start_at = time.time() + 3.0  # every process ready (imports done) by then
            futures = [pool.submit(_process_worker, url, p, len(p), start_at) for p in parts]
            done = [f.result() for f in futures]
            failed, cpu = sum(d[0] for d in done), sum(d[1] for d in done)
            children_rss = sum(d[2] for d in done)
            t0 = start_at - time.time() + time.perf_counter()
        wall = time.perf_counter() - t0
        double_cpu = _double_cpu_s() - double0
        stats = _stats(url)
        out.append(
            {
                "batch": "first" if n == 0 else "next",
                "makespan_s": wall,
                "cpu_ms_per_inv": cpu * 1e3 / fanout,
                "double_cpu_s": double_cpu,
                "failed": failed,
                "throttled": throttled or stats.get("throttled", 0),
                # invocations the double ran beyond one per successful request: re-runs
                "reruns": stats["requests"] - stats["throttled"] - (fanout - failed),
                "peak_in_flight": stats["peak_in_flight"],
            }
        )
    if target is not None:
        target.close()
    if pool is not None:
        pool.shutdown()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + children_rss
    for row in out:
        row["rss_mb"] = rss_mb
    return out


def _start_double(args: argparse.Namespace, way: str, throttle: float) -> tuple[Any, str, dict]:
    """Start the double for ``way`` in its own process; (process, url, env for the driver)."""
    if way == "openwhisk":
        cmd = [
            sys.executable,
            "-m",
            "tests.doubles.openwhisk_controller",
            "--simulate-s",
            str(args.delay),
            "--throttle",
            str(throttle),
            "--concurrency",
            "1000",
            "--backlog",
            str(args.backlog),
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "tests.doubles.lambda_invoke",
            "--delay",
            str(args.delay),
            "--throttle",
            str(throttle),
        ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "PORT":
        proc.kill()
        raise SystemExit(f"error: the double did not start: {line}")
    url = f"http://127.0.0.1:{line[1]}"
    env = dict(os.environ)
    env["SHPC_BENCH_DOUBLE_PID"] = str(proc.pid)
    if way == "openwhisk":  # the double's credentials, and no ~/.wskprops of the user's
        env.pop("WSK_CONFIG_FILE", None)
        env.update(WHISK_APIHOST=url, WHISK_AUTH=line[2], HOME=tempfile.mkdtemp())
    return proc, url, env


def _measure(args: argparse.Namespace, way: str, url: str, env: dict, fanout: int) -> list:
    """``--repeat`` fresh driver processes; their batches' figures."""
    runs = []
    for _ in range(args.repeat):
        cmd = [sys.executable, __file__, "--one", way, url, str(fanout)]
        cmd += ["--processes", str(args.processes), "--batches", str(args.batches)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"error: {way} at {fanout}: {out.stderr[-2000:]}")
        runs.extend(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", default="lambda,boto3-threads,boto3-processes")
    parser.add_argument("--fanouts", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3, help="fresh driver processes")
    parser.add_argument("--batches", type=int, default=2, help="batches per driver process")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--throttle", default="0", help="shares answered 429, comma-separated")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=5, help="the controller double's")
    parser.add_argument("--one", nargs=3, metavar=("WAY", "URL", "FANOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        way, url, fanout = args.one
        print(json.dumps(one(way, url, int(fanout), args.processes, args.batches)))
        return
    rows = []
    for way in args.ways.split(","):
        for throttle in (float(t) for t in args.throttle.split(",")):
            proc, url, env = _start_double(args, way, throttle)
            try:
                for fanout in (int(f) for f in args.fanouts.split(",")):
                    runs = _measure(args, way, url, env, fanout)
                    for batch in ("first", "next"):
                        mine = [r for r in runs if r["batch"] == batch]
                        if mine:
                            rows.append((way, throttle, fanout, batch, mine))
                    print(f"{way} 429={throttle} fan-out {fanout}: {runs}", file=sys.stderr)
            finally:
                proc.kill()
                proc.wait()
    _table(rows)


def _cell(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    values = [float(r[key]) for r in runs]
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def _table(rows: list[tuple[str, float, int, str, list[dict[str, Any]]]]) -> None:
    print(
        "| dispatch | 429 share | fan-out | batch | peak in flight | makespan s "
        "| driver CPU ms/inv | driver peak RSS MB | double CPU s | failed | 429s | re-runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for way, throttle, fanout, batch, runs in rows:
        print(
            f"| {way} | {throttle:g} | {fanout} | {batch} "
            f"| {_cell(runs, 'peak_in_flight', '.0f')} "
            f"| {_cell(runs, 'makespan_s', '.2f')} | {_cell(runs, 'cpu_ms_per_inv', '.2f')} "
            f"| {_cell(runs, 'rss_mb', '.0f')} | {_cell(runs, 'double_cpu_s', '.2f')} "
            f"| {_cell(runs, 'failed', '.0f')} "
            f"| {_cell(runs, 'throttled', '.0f')} | {_cell(runs, 'reruns', '.0f')} |"
        )


if __name__ == "__main__":
    main()
