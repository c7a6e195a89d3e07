"""``shpc project RUN_DIR``: what-if questions answered from a run's measurements (a model).

What would each workload of the run take and cost on Lambda and on a VM at another fan-out,
memory size, instance type, credit mode or arrival rate? The answer is the report's cloud
model (:mod:`serverless_hpc.report.cloud`, :mod:`serverless_hpc.report.verdict`) with the
settings pinned: the verdict sentence per workload, then both sides at the rate and every
VM way considered. Nothing is run and nothing in the run directory is written.

Exit codes: 0 answered; 2 bad input (not a run directory, a setting out of range, an
instance type the catalogue lacks); 4 an internal error (from ``shpc``'s own handler).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``project`` on the ``shpc`` sub-command parser (standard library only here)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "project",
        help="what a run's workloads would take and cost on Lambda and on a VM (a model): "
        "another fan-out, memory size, instance type or arrival rate",
    )
    p.add_argument("run_dir", type=Path, help="a run directory (results/<run-id>)")
    p.add_argument("--fanout", type=int, help="functions per job (default: the balanced one)")
    p.add_argument("--memory-mb", type=int, help="function memory size (default: the balanced)")
    p.add_argument("--instance", help="VM instance type of the catalogue (default: the cheapest)")
    p.add_argument(
        "--credit-mode",
        choices=("unlimited", "standard"),
        help="burstable VM CPU credits (default: the platform profile's, unlimited)",
    )
    p.add_argument(
        "--jobs-per-hour",
        default="1-1000",
        metavar="RATE",
        help="arrival rate: a value or a range, e.g. 10 or 1-1000 (default 1-1000)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_project)
    return p


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def answer(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The what-if answer as data; ``FileNotFoundError`` (not a run directory) and
    :class:`~serverless_hpc.report.cloud.OptionError` (a bad setting) for bad input."""
    from serverless_hpc.pricing_data import load_prices
    from serverless_hpc.report import cloud, decision, verdict
    from serverless_hpc.report.data import load_run
    from serverless_hpc.report.profile import load_profile
    from serverless_hpc.report.tables import summarize

    opts = cloud.Options(
        rates=cloud.parse_rate(args.jobs_per_hour),
        fanout=args.fanout,
        memory_mb=args.memory_mb,
        instance=args.instance,
        credit_mode=args.credit_mode,
    )
    prices, profile = load_prices(), load_profile()
    cloud.check_options(opts, prices, profile)
    data = load_run(run_dir)
    rows = summarize(data.records, data.batches)
    configs = decision.configurations(data, rows, prices, profile)
    found = verdict.verdicts(data, configs, prices, profile, opts)
    return {
        "run_id": data.run_id,
        "model": True,
        "settings": {
            "jobs_per_hour": list(opts.rates),
            "fanout": opts.fanout,
            "memory_mb": opts.memory_mb,
            "instance": opts.instance,
            "credit_mode": opts.credit_mode or profile.vm_credit_mode,
        },
        "verdict": found,
        "vm_types": verdict.vm_types(data, configs, prices, profile, opts),
        "notes": list(data.incomplete),
    }


def _usd(v: float) -> str:
    return f"${v:.3g}"


def _ms(v: float) -> str:
    return f"{v:,.0f} ms" if v < 10_000 else f"{v / 1e3:,.1f} s"


def text(result: dict[str, Any]) -> str:
    """The answer as the terminal shows it."""
    s = result["settings"]
    lo, hi = s["jobs_per_hour"]
    rate = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    lines = [
        f"run {result['run_id']}: a MODEL calibrated on its measurements "
        f"(jobs/h {rate}; figures quoted at {hi:g} jobs/h; credits {s['credit_mode']})"
    ]
    lines += [f"note: the run is incomplete: {n}" for n in result["notes"]]
    if not result["verdict"]:
        lines.append("no workload of this run ran on a function or a VM target")
    for name, v in result["verdict"].items():
        lines.append(f"- {v['sentence']}")
        f = v["functions"]
        if f:
            lines.append(
                f"    functions: {f['config']}: {_ms(f['time_to_result_ms'])}, "
                f"{_usd(f['cost_per_job_usd'])} a job ({f['cost_basis']}; "
                f"cold {f.get('cold_probability', 0):.0%})"
            )
        for r in (r for r in result["vm_types"] if r["workload"] == name):
            flags = f"  [{'; '.join(r['flags'])}]" if r["flags"] else ""
            lines.append(
                f"    {r['config']}: {_ms(r['time_to_result_ms'])}, "
                f"{_usd(r['cost_per_job_usd'])} a job{flags}"
            )
    return "\n".join(lines)


def cmd_project(args: argparse.Namespace) -> int:
    """Answer the what-if question; exit 2 on bad input, with one ``error:`` line."""
    from serverless_hpc.report.cloud import OptionError

    if not (args.run_dir / "records.jsonl").is_file():
        return _error(f"{args.run_dir}: no records.jsonl (is this a run directory?)")
    try:
        result = answer(args.run_dir, args)
    except (OptionError, FileNotFoundError) as exc:
        return _error(str(exc))
    print(json.dumps(result, indent=2) if args.json else text(result))
    return EXIT_OK
