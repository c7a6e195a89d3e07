"""Turn records into the summary (CSV + Markdown), PNG plots and a self-contained HTML report.

Reads ``records.jsonl``, ``batches.jsonl`` and ``run.json`` only, so a report can be rebuilt
from the files of any run (``shpc report DIR``), even a crashed one. ``python -m
serverless_hpc.report DIR`` does the same in its own process: ``shpc bench`` builds its
report that way, keeping matplotlib out of the driver's memory.

Statistics: medians with a distribution-free 95% confidence interval from order statistics
(the binomial method: the interval between the j-th and k-th smallest of n values covers the
median with probability sum C(n,i)/2^n for j <= i < k). With fewer than 6 values no such
interval reaches 95%, and the CI columns are left empty rather than filled with a number that
does not mean what its header says.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from serverless_hpc.invocation import Phase
from serverless_hpc.records import read_records

CONFIDENCE: Final = 0.95

SUMMARY_COLUMNS: Final = (
    "target",
    "workload",
    "shards",
    "mode",
    "invocations",
    "failed",
    "cold",
    "median_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "p95_ms",
    "cold_median_ms",
    "cold_p95_ms",
    "warm_median_ms",
    "warm_p95_ms",
    "init_median_ms",
    "compute_median_ms",
    "makespan_median_ms",
    "makespan_ci95_low_ms",
    "makespan_ci95_high_ms",
    "items_per_s",
    "max_rss_mb",
    "cost_usd",
    "accuracy",
)


def median_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Distribution-free CI of the median, or None when ``len(values)`` is too small."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None
    alpha = 1 - confidence
    # Largest j (1-based) with P(Binomial(n, 1/2) < j) <= alpha/2; the interval is [x_j, x_{n+1-j}].
    cdf = 0.0
    j = 0
    for i in range(n + 1):
        p = math.comb(n, i) / 2**n
        if cdf + p > alpha / 2:
            break
        cdf += p
        j = i + 1
    if j < 1:
        return None
    return xs[j - 1], xs[n - j]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _median(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


@dataclass(slots=True)
class RunData:
    """Everything a report is made of."""

    out: Path
    records: list[dict[str, Any]]
    batches: list[dict[str, Any]]
    meta: dict[str, Any]


def load_run(out: Path) -> RunData:
    """Read a run directory."""
    rec_path = out / "records.jsonl"
    if not rec_path.is_file():
        raise FileNotFoundError(f"{out}: no records.jsonl (is this a run directory?)")
    batches = read_records(out / "batches.jsonl") if (out / "batches.jsonl").is_file() else []
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    return RunData(out=out, records=read_records(rec_path), batches=batches, meta=meta)


def summarize(
    records: Sequence[dict[str, Any]], batches: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (target, workload, shards, mode) with the columns of :data:`SUMMARY_COLUMNS`."""
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["target"], r["workload"], r["shards"], r["mode"])].append(r)
    bgroups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for b in batches:
        bgroups[(b["target"], b["workload"], b["shards"], b["mode"])].append(b)
    rows = []
    for key in sorted(groups):
        recs = groups[key]
        ok = [r for r in recs if r["ok"]]
        lat = [r["client_ms"] for r in ok]
        cold = [r["client_ms"] for r in ok if r["cold"]]
        warm = [r["client_ms"] for r in ok if not r["cold"]]
        ci = median_ci(lat)
        spans = [
            b["makespan_ms"]
            for b in bgroups.get(key, [])
            if b.get("makespan_ms") and not b["failed"]
        ]
        span_ci = median_ci(spans)
        span_med = statistics.median(spans) if spans else None
        items = statistics.median([b["items"] for b in bgroups[key]]) if bgroups.get(key) else None
        costs = [r["cost_usd"] for r in recs if r.get("cost_usd") is not None]
        acc = [b["accuracy"] for b in bgroups.get(key, []) if b.get("accuracy") is not None]
        acc += [
            b["test_accuracy"] for b in bgroups.get(key, []) if b.get("test_accuracy") is not None
        ]
        rss = [r["max_rss_mb"] for r in recs if r.get("max_rss_mb") is not None]
        rows.append(
            {
                "target": key[0],
                "workload": key[1],
                "shards": key[2],
                "mode": key[3],
                "invocations": len(recs),
                "failed": len(recs) - len(ok),
                "cold": sum(1 for r in ok if r["cold"]),
                "median_ms": statistics.median(lat) if lat else None,
                "ci95_low_ms": ci[0] if ci else None,
                "ci95_high_ms": ci[1] if ci else None,
                "p95_ms": percentile(lat, 95),
                "cold_median_ms": statistics.median(cold) if cold else None,
                "cold_p95_ms": percentile(cold, 95),
                "warm_median_ms": statistics.median(warm) if warm else None,
                "warm_p95_ms": percentile(warm, 95),
                "init_median_ms": _median(r.get("init_ms") for r in ok if r["cold"]),
                "compute_median_ms": _median(r.get("compute_ms") for r in ok),
                "makespan_median_ms": span_med,
                "makespan_ci95_low_ms": span_ci[0] if span_ci else None,
                "makespan_ci95_high_ms": span_ci[1] if span_ci else None,
                "items_per_s": items / (span_med / 1e3) if items and span_med else None,
                "max_rss_mb": max(rss) if rss else None,
                "cost_usd": sum(costs) if costs else None,
                "accuracy": statistics.median(acc) if acc else None,
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if abs(value) < 1 and value != 0:
            return f"{value:.4g}"
        return f"{value:.1f}"
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The summary as CSV (full precision)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in SUMMARY_COLUMNS})


_MD_COLUMNS: Final = (
    ("target", "target"),
    ("workload", "workload"),
    ("shards", "shards"),
    ("mode", "mode"),
    ("invocations", "n"),
    ("failed", "failed"),
    ("cold", "cold"),
    ("median_ms", "median ms"),
    ("ci95_low_ms", "95% CI low"),
    ("ci95_high_ms", "95% CI high"),
    ("cold_median_ms", "cold median"),
    ("warm_median_ms", "warm median"),
    ("compute_median_ms", "compute median"),
    ("makespan_median_ms", "makespan ms"),
    ("items_per_s", "items/s"),
    ("cost_usd", "cost USD"),
    ("accuracy", "accuracy"),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(h for _, h in _MD_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in _MD_COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(row[k]) for k, _ in _MD_COLUMNS) + " |" for row in rows]
    return "\n".join([head, sep, *body]) + "\n"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def make_plots(data: RunData, rows: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    """PNG plots by file name. matplotlib is imported here only (Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    plots.update(_fanout_plots(plt, rows))
    plots.update(_cold_plots(plt, data))
    return plots


def _fanout_plots(plt: Any, rows: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    fanned = [w for w in ("classify", "dataproc") if any(r["workload"] == w for r in rows)]
    targets = sorted({r["target"] for r in rows})
    for metric, fname, ylabel in (
        ("median_ms", "latency_by_fanout.png", "median invocation latency (ms, client side)"),
        ("makespan_median_ms", "makespan_by_fanout.png", "makespan: first send to last reply (ms)"),
    ):
        if not fanned:
            break
        fig, axes = plt.subplots(1, len(fanned), figsize=(6 * len(fanned), 4), squeeze=False)
        for ax, workload in zip(axes[0], fanned, strict=True):
            for target in targets:
                sel = sorted(
                    (
                        r
                        for r in rows
                        if r["workload"] == workload
                        and r["target"] == target
                        and r["mode"] == "natural"
                        and r[metric] is not None
                    ),
                    key=lambda r: r["shards"],
                )
                if not sel:
                    continue
                xs = [r["shards"] for r in sel]
                ys = [r[metric] for r in sel]
                lo_key = "ci95_low_ms" if metric == "median_ms" else "makespan_ci95_low_ms"
                hi_key = lo_key.replace("low", "high")
                err = [
                    [
                        y - (r[lo_key] if r[lo_key] is not None else y)
                        for y, r in zip(ys, sel, strict=True)
                    ],
                    [
                        (r[hi_key] if r[hi_key] is not None else y) - y
                        for y, r in zip(ys, sel, strict=True)
                    ],
                ]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=target)
            ax.set_title(f"{workload}: by fan-out")
            # Not "in parallel": only the target's concurrency runs at once; the rest queue.
            ax.set_xlabel("shards (fan-out)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        plots[fname] = _png(fig)
        plt.close(fig)
    return plots


def _cold_plots(plt: Any, data: RunData) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    # Cold vs warm: every successful record, whatever its mode, split by its cold flag.
    pairs = sorted({(r["target"], r["workload"]) for r in data.records if r["ok"]})
    if pairs:
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(pairs)), 4))
        width = 0.38
        for i, (target, workload) in enumerate(pairs):
            recs = [
                r
                for r in data.records
                if r["ok"] and r["target"] == target and r["workload"] == workload
            ]
            for off, flag, color in (
                (-width / 2, True, "tab:blue"),
                (width / 2, False, "tab:orange"),
            ):
                vals = [r["client_ms"] for r in recs if r["cold"] == flag]
                if vals:
                    ax.bar(
                        i + off,
                        statistics.median(vals),
                        width,
                        color=color,
                        label=("cold" if flag else "warm") if i == 0 else None,
                    )
        ax.set_xticks(range(len(pairs)), [f"{t}\n{w}" for t, w in pairs])
        ax.set_ylabel("median latency (ms)")
        ax.set_yscale("log")
        ax.set_title("cold vs warm invocations")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        plots["cold_vs_warm.png"] = _png(fig)
        plt.close(fig)

    # Cold-start breakdown: median of each component over cold records, one panel per
    # workload with its own scale (a training cold start is minutes, a classify one < 1 s).
    cold = [r for r in data.records if r["ok"] and r["cold"] and r.get("breakdown")]
    cworkloads = sorted({r["workload"] for r in cold})
    if cworkloads:
        fig, axes = plt.subplots(
            1, len(cworkloads), figsize=(4.2 * len(cworkloads), 4), squeeze=False
        )
        for ax, workload in zip(axes[0], cworkloads, strict=True):
            sel_targets = sorted({r["target"] for r in cold if r["workload"] == workload})
            bottoms = [0.0] * len(sel_targets)
            for part, label in _PART_LABELS.items():
                vals = [
                    _median(
                        r["breakdown"].get(part)
                        for r in cold
                        if r["target"] == target and r["workload"] == workload
                    )
                    or 0.0
                    for target in sel_targets
                ]
                ax.bar(range(len(sel_targets)), vals, bottom=bottoms, label=label)
                bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
            ax.set_xticks(range(len(sel_targets)), sel_targets)
            ax.set_title(f"{workload}: where a cold start's time goes", fontsize=10)
            ax.grid(alpha=0.3, axis="y")
        axes[0][0].set_ylabel("ms (median over cold starts)")
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        plots["cold_start_breakdown.png"] = _png(fig)
        plt.close(fig)
    return plots


def checks(data: RunData) -> list[tuple[str, bool, str]]:
    """Correctness checks across the run: (name, passed, detail)."""
    out: list[tuple[str, bool, str]] = []
    digests: dict[tuple[str, int], set[str]] = defaultdict(set)
    for b in data.batches:
        if b["workload"] == "dataproc" and b.get("reduced_sha256"):
            digests[(b["target"], b.get("reduced_n", 0))].add(b["reduced_sha256"])
    if digests:
        all_d = {d for ds in digests.values() for d in ds}
        out.append(
            (
                "dataproc: every fan-out reduces to the identical result",
                len(all_d) == 1,
                f"{len(all_d)} distinct reduced result(s) over "
                f"{sum(1 for b in data.batches if b.get('reduced_sha256'))} batches",
            )
        )
    unreduced = [b for b in data.batches if b.get("combine_error")]
    if unreduced:
        out.append(
            (
                "dataproc: every batch's partial results can be reduced",
                False,
                f"{len(unreduced)} batch(es) could not be: {unreduced[0]['combine_error']}",
            )
        )
    acc = [
        (b["target"], b["shards"], b["accuracy"])
        for b in data.batches
        if b.get("accuracy") is not None
    ]
    if acc:
        versions = {v for b in data.batches for v in b.get("model_versions", [])}
        per_target: dict[str, set[float]] = defaultdict(set)
        for t, _, a in acc:
            per_target[t].add(round(a, 12))
        same = all(len(v) == 1 for v in per_target.values())
        out.append(
            (
                "classify: accuracy is identical at every fan-out (same model, same images)",
                same,
                "; ".join(f"{t}: {sorted(v)}" for t, v in sorted(per_target.items()))
                + f" (model versions: {', '.join(sorted(versions))})",
            )
        )
    failed = sum(1 for r in data.records if not r["ok"])
    out.append(("no failed invocations", failed == 0, f"{failed} of {len(data.records)} failed"))
    return out


#: Legend labels of the cold-start phases (the one enumeration every target reports).
_PART_LABELS: Final = {p.value: Phase.label(p) for p in Phase}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f2f2f2}td:nth-child(-n+4){text-align:left}img{max-width:100%;margin:.5rem 0}
.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}code{background:#f5f5f5;padding:0 .2rem}
"""


def render_html(data: RunData, rows: Sequence[dict[str, Any]], plots: dict[str, bytes]) -> str:
    """A self-contained HTML page: tables, checks and plots (inlined as data URIs)."""
    esc = html.escape
    meta = data.meta
    env = meta.get("environment", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>serverless-hpc run {esc(str(meta.get('run_id', '')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>serverless-hpc benchmark <code>{esc(str(meta.get('run_id', '')))}</code></h1>",
        "<p>Each invocation's latency is measured by the driver from request sent to reply "
        "parsed. <em>Makespan</em> is one fan-out from the first request sent to the last "
        "reply. Medians carry a distribution-free 95% confidence interval (empty when there "
        "are fewer than 6 values). Cold means the invocation started a new function instance "
        "(or, on <code>standalone</code>, the first use of a workload in a worker).</p>",
        "<h2>Environment</h2><ul>",
        f"<li>Python {esc(str(env.get('python')))} on {esc(str(env.get('platform')))}, "
        f"{esc(str(env.get('cpu_count')))} CPUs, {esc(str(env.get('memory_mb')))} MB</li>",
        f"<li>packages: {esc(json.dumps(env.get('packages', {})))}</li>",
        f"<li>targets: {esc(json.dumps(meta.get('targets', {})))}</li>",
        f"<li>config: <code>{esc(json.dumps(meta.get('config', {})))}</code></li></ul>",
        "<h2>Checks</h2><ul>",
    ]
    for name, passed, detail in checks(data):
        cls = "pass" if passed else "fail"
        parts.append(
            f"<li class='{cls}'>{'PASS' if passed else 'FAIL'}: {esc(name)} "
            f"<small>({esc(detail)})</small></li>"
        )
    parts.append("</ul><h2>Summary</h2><table><tr>")
    parts += [f"<th>{esc(h)}</th>" for _, h in _MD_COLUMNS]
    parts.append("</tr>")
    for row in rows:
        parts.append(
            "<tr>" + "".join(f"<td>{esc(_fmt(row[k]))}</td>" for k, _ in _MD_COLUMNS) + "</tr>"
        )
    parts.append("</table>")
    for name, png in plots.items():
        b64 = base64.b64encode(png).decode()
        parts.append(f"<h3>{esc(name.removesuffix('.png').replace('_', ' '))}</h3>")
        parts.append(f"<img alt='{esc(name)}' src='data:image/png;base64,{b64}'>")
    parts.extend(_break_even_html(data))
    trains = [
        b for b in data.batches if b["workload"] == "train" and b.get("test_accuracy") is not None
    ]
    if trains:
        parts.append("<h2>Training</h2><ul>")
        for b in trains:
            parts.append(
                f"<li>{esc(b['target'])}: model {esc(str(b.get('model_version')))}, test accuracy "
                f"{b['test_accuracy']:.4f} on the 10,000 held-out test images</li>"
            )
        parts.append("</ul>")
    failures = [r for r in data.records if not r["ok"]]
    if failures:
        parts.append("<h2>Failed invocations</h2><ul>")
        for r in failures[:200]:
            parts.append(
                f"<li>{esc(r['target'])} {esc(r['workload'])} shards={r['shards']} "
                f"shard={r['shard']}: {esc(str(r['error']))}</li>"
            )
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def break_even(data: RunData) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per workload, the Lambda invocation rate above which the EC2 instance is cheaper.

    Empty unless the run has priced ``lambda`` records. The instance type and root volume
    are the ``ec2`` target's when the run had one, else the comparison default.
    """
    if not any(r["target"] == "lambda" and r.get("cost_usd") is not None for r in data.records):
        return [], {}
    from serverless_hpc.pricing import break_even_table
    from serverless_hpc.pricing_data import load_prices

    prices = load_prices()
    ec2 = data.meta.get("targets", {}).get("ec2", {})
    rows = break_even_table(
        data.records,
        prices=prices,
        instance_type=ec2.get("instance_type") or "t3.xlarge",
        root_volume_gb=float(ec2.get("root_volume_gb") or 0),
    )
    return rows, {"region": prices.region, "as_of": prices.as_of}


def _break_even_html(data: RunData) -> list[str]:
    rows, about = break_even(data)
    if not rows:
        return []
    esc = html.escape
    out = [
        "<h2>Break-even: Lambda against an always-on instance</h2>",
        f"<p>Prices for {esc(str(about['region']))} as of {esc(str(about['as_of']))} "
        "(<code>serverless_hpc/prices.json</code>). Below the break-even rate Lambda costs "
        "less, because it bills only while working; above it the instance's flat hourly "
        "price wins.</p><table><tr><th>workload</th><th>basis</th><th>median cost of one "
        "invocation (USD)</th><th>instance</th><th>instance USD/h</th>"
        "<th>break-even invocations/h</th></tr>",
    ]
    for r in rows:
        out.append(
            f"<tr><td>{esc(r['workload'])}</td><td>{esc(r['basis'])}</td>"
            f"<td>{r['median_cost_usd']:.3g}</td><td>{esc(r['instance_type'])}</td>"
            f"<td>{r['instance_hourly_usd']:.4f}</td><td>{r['break_even_per_hour']:,.0f}</td></tr>"
        )
    out.append("</table>")
    return out


def build_report(out: Path) -> dict[str, Path]:
    """Write summary.csv, summary.md, the PNG plots and report.html into ``out``."""
    data = load_run(out)
    rows = summarize(data.records, data.batches)
    written = {"summary.csv": out / "summary.csv", "summary.md": out / "summary.md"}
    write_csv(rows, written["summary.csv"])
    written["summary.md"].write_text(markdown_table(rows), encoding="utf-8")
    plots = make_plots(data, rows)
    for name, png in plots.items():
        (out / name).write_bytes(png)
        written[name] = out / name
    written["report.html"] = out / "report.html"
    written["report.html"].write_text(render_html(data, rows, plots), encoding="utf-8")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serverless_hpc.report RUN_DIR``: build the report; print the files written.

    Exit codes: 0 written; 2 not a run directory.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m serverless_hpc.report",
        description="build summary, plots and report.html from a run directory",
    )
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        written = build_report(args.run_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
