"""``shpc compare BASE NEW``: did a change make the runs' summary rows faster or slower?

For every summary row present in both runs (same target, workload, shards, mode) the median
client latency of successful invocations is compared: the change is
``median(new) / median(base) - 1`` and its 95% confidence interval comes from a percentile
bootstrap of that ratio (each run's values resampled on their own, 2000 resamples, fixed
seed). The verdict is *slower* when the whole interval lies above 0, *faster* when below,
else *no significant change*; rows with fewer than 2 values on a side say *too few values*.
Rows only one run has are listed, not compared.

The ``--json`` output shape is stable (the dashboard reads it)::

    {"base": id, "new": id, "method": str,
     "rows": [{"key": {"target", "workload", "shards", "mode"}, "base_median_ms",
               "new_median_ms", "change_pct", "ci_low_pct", "ci_high_pct", "verdict"}],
     "only_in_base": [key, ...], "only_in_new": [key, ...]}
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from serverless_hpc.report.data import RunData, bad_line_notes, load_run
from serverless_hpc.report.stats import median_ratio_ci
from serverless_hpc.report.tables import RowKey, row_key

METHOD: Final = (
    "percentile bootstrap (2000 resamples) of the ratio of median client latencies "
    "of successful invocations; 95% CI"
)
SLOWER, FASTER, SAME, TOO_FEW = "slower", "faster", "no significant change", "too few values"


def _key_dict(key: RowKey) -> dict[str, Any]:
    out: dict[str, Any] = {"target": key[0], "workload": key[1], "shards": key[2], "mode": key[3]}
    if key[4]:  # rows of a memory sweep differ by size
        out["memory_mb"] = key[4]
    return out


def _latencies(data: RunData) -> dict[RowKey, list[float]]:
    out: dict[RowKey, list[float]] = defaultdict(list)
    for r in data.records:
        out[row_key(r)]  # a row whose invocations all failed is still a row of the run
        if r["ok"]:
            out[row_key(r)].append(float(r["client_ms"]))
    return out


def compare_runs(base: RunData, new: RunData) -> dict[str, Any]:
    """The comparison of two loaded runs (the ``--json`` shape, plus ``notes``)."""
    b_lat, n_lat = _latencies(base), _latencies(new)
    rows = []
    for key in sorted(set(b_lat) & set(n_lat)):
        bv, nv = b_lat[key], n_lat[key]
        row: dict[str, Any] = {
            "key": _key_dict(key),
            "base_median_ms": statistics.median(bv) if bv else None,
            "new_median_ms": statistics.median(nv) if nv else None,
            "change_pct": None,
            "ci_low_pct": None,
            "ci_high_pct": None,
            "verdict": TOO_FEW,
        }
        est = median_ratio_ci(bv, nv)
        if est is not None:
            ratio, ci = est
            row["change_pct"] = (ratio - 1) * 100
            if ci is not None:
                row["ci_low_pct"], row["ci_high_pct"] = (ci[0] - 1) * 100, (ci[1] - 1) * 100
                if ci[0] > 1:
                    row["verdict"] = SLOWER
                elif ci[1] < 1:
                    row["verdict"] = FASTER
                else:
                    row["verdict"] = SAME
        rows.append(row)
    notes = [f"base: {n}" for n in base.incomplete + bad_line_notes(base)]
    notes += [f"new: {n}" for n in new.incomplete + bad_line_notes(new)]
    return {
        "base": base.run_id,
        "new": new.run_id,
        "method": METHOD,
        "rows": rows,
        "only_in_base": [_key_dict(k) for k in sorted(set(b_lat) - set(n_lat))],
        "only_in_new": [_key_dict(k) for k in sorted(set(n_lat) - set(b_lat))],
        "notes": notes,
    }


def compare_dirs(base: Path, new: Path) -> dict[str, Any]:
    """:func:`compare_runs` of two run directories."""
    return compare_runs(load_run(base), load_run(new))


def regressions(result: dict[str, Any], pct: float) -> list[dict[str, Any]]:
    """Rows significantly slower (the whole CI above 0) by more than ``pct`` percent."""
    return [
        r
        for r in result["rows"]
        if r["verdict"] == SLOWER and r["change_pct"] is not None and r["change_pct"] > pct
    ]


def _label(key: dict[str, Any]) -> str:
    return f"{key['target']}/{key['workload']}/{key['shards']}/{key['mode']}"


def text_report(result: dict[str, Any]) -> str:
    """The comparison as a terminal table."""
    lines = [
        f"compare {result['base']} (base) -> {result['new']} (new)",
        f"method: {result['method']}",
        "",
        f"{'row':<44} {'base ms':>10} {'new ms':>10} {'change':>8} {'95% CI':>18}  verdict",
    ]
    for r in result["rows"]:

        def num(v: float | None, f: str = "{:.1f}") -> str:
            return f.format(v) if v is not None else "-"

        ci = (
            f"[{r['ci_low_pct']:+.1f}, {r['ci_high_pct']:+.1f}]%"
            if r["ci_low_pct"] is not None
            else "-"
        )
        lines.append(
            f"{_label(r['key']):<44} {num(r['base_median_ms']):>10} {num(r['new_median_ms']):>10} "
            f"{num(r['change_pct'], '{:+.1f}%'):>8} {ci:>18}  {r['verdict']}"
        )
    for side in ("only_in_base", "only_in_new"):
        if result[side]:
            which = "base" if side == "only_in_base" else "new"
            lines.append(
                f"not compared, only in {which}: " + ", ".join(_label(k) for k in result[side])
            )
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
