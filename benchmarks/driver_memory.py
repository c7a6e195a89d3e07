"""Peak memory (VmHWM) of the benchmark driver in the situations the issue budgets.

The driver must stay small enough to run from a 1 GB machine: ``shpc bench --help`` and a
driver that only talks to remote targets must stay under 100 MB RSS. Each case runs in a
fresh interpreter that reports its own ``VmHWM`` (``ru_maxrss`` would include the parent's).

Usage: python benchmarks/driver_memory.py [RUN_DIR]   (RUN_DIR: a finished run, to time the report)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_HWM = textwrap.dedent(
    """
    def _hwm():
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    """
)

CASES = {
    "python -c pass (baseline)": "",
    "shpc bench --help": """
        import contextlib, io
        from serverless_hpc import cli
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            cli.main(['bench', '--help'])
    """,
    "driver modules (driver, rundir, registry, report w/o plots)": """
        from serverless_hpc import driver, report, rundir, targets
    """,
    "remote-target driver (boto3 Lambda client + requests session)": """
        from serverless_hpc import driver, report, rundir, targets
        import boto3, requests
        boto3.session.Session(region_name='us-east-1').client('lambda')
        requests.Session()
    """,
    # The whole remote-only `shpc bench` in this process: the remote targets' modules, a
    # boto3 Lambda client and a requests session, then cli.main over the default plan
    # (train, classify and dataproc at 1/5/10/15 shards, natural and cold) against a
    # stand-in remote target that answers at once with contract envelopes. The driver does
    # everything it does for a real remote run: the thread pool, progress bar, records,
    # batch summaries (the dataproc reduce included); the report is built in a child
    # process, whose memory VmHWM does not count, as it does not count against the driver.
    "remote-only shpc bench, full default plan (report in its child process)": """
        import contextlib, io, tempfile
        import boto3, requests
        from serverless_hpc import cli, targets
        from serverless_hpc.targets import aws_lambda, openwhisk
        from serverless_hpc.invocation import Outcome
        from serverless_hpc.targets.base import Target

        boto3.session.Session(region_name='us-east-1').client('lambda')
        requests.Session()
        BINS = 16

        class RemoteStandIn(Target):
            name = 'remote'
            supports_forced_cold = True

            def invoke(self, request, *, timeout_s, force_cold=False):
                p = request['params']
                if request['workload'] == 'train':
                    result = {'version': 'v1', 'test_accuracy': 0.91}
                elif request['workload'] == 'classify':
                    n = p['end'] - p['start']
                    result = {'n': n, 'correct': n, 'labels': '0' * n, 'model_version': 'v1'}
                else:
                    cls = {'count': 0, 'sum': 0, 'sumsq': 0, 'nonzero': 0, 'hist': [0] * BINS}
                    result = {'split': p['split'], 'bins': BINS, 'start': p['start'],
                              'end': p['end'], 'n': p['end'] - p['start'],
                              'classes': [dict(cls) for _ in range(10)]}
                body = {'ok': True, 'workload': request['workload'], 'result': result,
                        'timings': {'load_ms': 1.0, 'compute_ms': 1.0}}
                return Outcome(response=body, cold=force_cold, init_ms=1.0, duration_ms=2.0)

        targets.TARGETS['remote'] = '__main__:RemoteStandIn'
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(['bench', '--targets', 'remote', '--out', tmp + '/run', '-q'])
        assert code == 0, code
    """,
}


def measure(code: str) -> float:
    """Peak RSS in MB of a fresh interpreter running ``code``."""
    script = _HWM + textwrap.dedent(code) + "\nprint(_hwm())\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {}
    cases = dict(CASES)
    if len(sys.argv) > 1:
        cases["report with charts (pygal) for " + sys.argv[1]] = (
            f"from pathlib import Path\nfrom serverless_hpc.report import build_report\n"
            f"build_report(Path({sys.argv[1]!r}))"
        )
    for name, code in cases.items():
        try:
            results[name] = round(measure(code), 1)
        except subprocess.CalledProcessError as exc:
            results[name] = f"failed: {exc.stderr.strip().splitlines()[-1]}"
    width = max(map(len, results))
    for name, mb in results.items():
        print(f"{name:<{width}}  {mb} MB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
