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
    "driver modules (bench, records, registry, report w/o plots)": """
        from serverless_hpc import bench, records, report, targets
    """,
    "remote-target driver (boto3 Lambda client + requests session)": """
        from serverless_hpc import bench, records, report, targets
        import boto3, requests
        boto3.session.Session(region_name='us-east-1').client('lambda')
        requests.Session()
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
        cases["report with plots (matplotlib) for " + sys.argv[1]] = (
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
