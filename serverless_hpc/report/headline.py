"""The answer first: plain sentences generated from the summary, never written by hand.

First, per workload, the verdict (:mod:`.verdict`): functions or a VM in the cloud, for what
arrival rate, with both sides' time to result and cost per job, marked measured or model;
then one sentence saying what is modelled and that local-faas against standalone on this
machine is an emulation check. Those are ``answer``; the rest (``more``) is on demand.

Then, per workload: each target's best configuration (lowest time to result in natural mode) and
its cost per job where measured; which target wins and by how much, with a bootstrap 95% CI
of the ratio of median job times (a CI that holds 1 is a tie, said as one); the cold-start
penalty; for each training, its final accuracy and its time and cost to 0.90 (a modelled cost
said to be one). Every sentence names the summary rows its figures come from
(``target/workload/shards/mode``; a training as ``target/workload/mode, N workers``).
``headline.json`` carries the same as data for the dashboard.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from serverless_hpc.report.data import RunData, bad_line_notes
from serverless_hpc.report.profile import load_profile
from serverless_hpc.report.stats import median_ratio_ci
from serverless_hpc.report.tables import (
    RowKey,
    batch_spans,
    key_label,
    measures_the_platform,
    row_key,
    time_to_result_ms,
)
from serverless_hpc.report.training import TARGET_ACCURACY, Training, trainings, workers_text
from serverless_hpc.rundir import paths
from serverless_hpc.safeio import read_text

log = logging.getLogger(__name__)

#: The largest headline.json read (a run's is a few KB).
MAX_HEADLINE_BYTES: Final = 4 * 1024 * 1024

#: The targets that run on the benchmark machine itself: comparing them is an emulation check.
LOCAL_TARGETS: Final = frozenset({"local-faas", "standalone"})


def fmt_ms(ms: float) -> str:
    """A duration for a sentence: ms below a second, s below ten minutes, then min."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 600_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def fmt_usd(usd: float) -> str:
    """Dollars with enough digits for a fraction of a cent."""
    return f"${usd:.3g}" if usd < 0.01 else f"${usd:,.2f}"


class _Samples:
    """Job times per row (batch makespans), else its invocations' latencies: indexed once,
    so a headline costs time linear in records however many rows it compares."""

    def __init__(self, data: RunData) -> None:
        index = data.index()
        self.spans = batch_spans(index.batches)
        self.latencies: dict[RowKey, list[float]] = {
            key: [r["client_ms"] for r in recs if r["ok"]] for key, recs in index.records.items()
        }

    def of(self, key: RowKey) -> list[float]:
        return self.spans.get(key) or self.latencies.get(key, [])


def _best_rows(rows: Sequence[dict[str, Any]], workload: str) -> dict[str, dict[str, Any] | None]:
    """Per target: its natural-mode row with the lowest time to result (None: none usable).

    A row taken while this machine was oversubscribed, or with shards waiting for an
    in-flight slot, measures the machine or the queue, not the platform: it is chosen only
    when the target has no other, and then marked ``not_platform`` so that every sentence
    citing it says so.
    """
    best: dict[str, dict[str, Any] | None] = {}
    fallback: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["workload"] != workload:
            continue
        best.setdefault(row["target"], None)
        t = time_to_result_ms(row)
        if row["mode"] != "natural" or t is None:
            continue
        pool: dict[str, Any] = best if measures_the_platform(row) else fallback
        cur = pool.get(row["target"])
        if cur is None or t < (time_to_result_ms(cur) or float("inf")):
            pool[row["target"]] = row
    for target, row in fallback.items():
        if best.get(target) is None:
            best[target] = {**row, "not_platform": True}
    return best


def _config(row: dict[str, Any]) -> str:
    mem = row.get("memory_mb")
    at_mem = f", {mem:.0f} MB" if mem else ""
    caveat = (
        f" ({row['flags']}: this machine's figure, not the platform's)"
        if row.get("not_platform")
        else ""
    )
    return f"{fmt_ms(time_to_result_ms(row) or 0.0)} at {row['shards']} shard(s){at_mem}{caveat}"


def _flagged_sentences(
    rows: Sequence[dict[str, Any]], workload: str, info: dict[str, Any]
) -> list[str]:
    """Per target, the rows whose figures measure this machine or the driver's queue rather
    than the platform, and why."""
    out = []
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["workload"] == workload and not measures_the_platform(row):
            by_target[row["target"]].append(row)
    for target, flagged in sorted(by_target.items()):
        labels = [key_label(r) for r in flagged]
        info["targets"].setdefault(target, {})["not_platform_rows"] = labels
        over = [r for r in flagged if r.get("oversubscribed")]
        queued = [r for r in flagged if r.get("queued_shards")]
        why = []
        if over:
            why.append(
                f"{len(over)} ran with more CPU in flight than this machine has (their "
                "times measure the machine's contention, not a cold start or the platform)"
            )
        if queued:
            most = max(int(r["queued_shards"]) for r in queued)
            why.append(
                f"{len(queued)} had shards waiting for an in-flight slot (up to {most}: their "
                "makespans include that wait)"
            )
        out.append(
            f"{workload} on {target}: {len(flagged)} row(s) do not measure the platform, so "
            "no figure above is taken from them unless said: "
            f"{'; '.join(why)} (rows {', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''})."
        )
    return out


def _cold_penalty(rows: Sequence[dict[str, Any]], workload: str, target: str, shards: int) -> Any:
    """(cold median, warm median, rows cited) at ``shards``, else at any fan-out; or None."""
    mine = [
        r
        for r in rows
        if r["workload"] == workload and r["target"] == target and measures_the_platform(r)
    ]
    for pick in (
        [r for r in mine if r["shards"] == shards],
        sorted(mine, key=lambda r: r["shards"]),
    ):
        for row in pick:
            warm_row = next(
                (
                    x
                    for x in mine
                    if x["shards"] == row["shards"] and x["warm_median_ms"] is not None
                ),
                None,
            )
            if row["cold_median_ms"] is None or warm_row is None:
                continue
            cited = sorted({key_label(row), key_label(warm_row)})
            return row["cold_median_ms"], warm_row["warm_median_ms"], row["shards"], cited
    return None


def _cost_sentences(workload: str, usable: dict[str, dict[str, Any]]) -> list[str]:
    """Cost per job at each target's best configuration, or that none was measured."""
    if not usable:
        return []
    costs = []
    for target, row in sorted(usable.items()):
        c = row.get("job_cost_usd")
        costs.append(f"{target} {fmt_usd(c)}" if c is not None else f"{target} not measured")
    if any(row.get("job_cost_usd") is not None for row in usable.values()):
        return [f"{workload}: cost per job at the best configuration: {'; '.join(costs)}."]
    return [
        f"{workload}: no target of this run measured a cost (the decision section of the "
        "report gives modelled costs, labelled as such)."
    ]


def _workload_headline(
    samples: _Samples, rows: Sequence[dict[str, Any]], workload: str
) -> tuple[list[str], dict[str, Any]]:
    sentences: list[str] = []
    best = _best_rows(rows, workload)
    info: dict[str, Any] = {"workload": workload, "targets": {}, "comparisons": []}
    usable = {t: r for t, r in best.items() if r is not None}
    for target, row in sorted(best.items()):
        if row is None:
            mine = [r for r in rows if r["workload"] == workload and r["target"] == target]
            n = sum(r["invocations"] for r in mine)
            failed = sum(r["failed"] for r in mine)
            sentences.append(
                f"{workload} on {target}: no successful job; {failed} of {n} invocations failed "
                f"(rows {', '.join(key_label(r) for r in mine)})."
            )
            info["targets"][target] = {"failed": failed, "invocations": n, "best": None}
            continue
        info["targets"][target] = {
            "best": {
                "row": key_label(row),
                "shards": row["shards"],
                "time_to_result_ms": time_to_result_ms(row),
                "cost_per_job_usd": row.get("job_cost_usd"),
            },
            "failed": row["failed"],
        }
    ranked = sorted(usable.items(), key=lambda kv: time_to_result_ms(kv[1]) or 0.0)
    if len(ranked) == 1:
        target, row = ranked[0]
        sentences.append(
            f"{workload}: only {target} was measured; its best time to result is "
            f"{_config(row)} (row {key_label(row)})."
        )
    elif ranked:
        win_t, win = ranked[0]
        win_s = samples.of(row_key(win))
        for other_t, other in ranked[1:]:
            est = median_ratio_ci(win_s, samples.of(row_key(other)))
            ratio, ci = est if est else (None, None)
            cited = f"rows {key_label(win)}, {key_label(other)}"
            # Two emulations on one machine: say so, so it is not read as the cloud answer.
            emulated = {win_t, other_t} <= LOCAL_TARGETS
            head = f"{workload}, emulation check on this machine" if emulated else workload
            comp: dict[str, Any] = {
                "faster": win_t,
                "slower": other_t,
                "ratio": ratio,
                "ci95": list(ci) if ci else None,
                "rows": [key_label(win), key_label(other)],
                "emulation_check": emulated,
            }
            if ci is not None and ci[0] <= 1.0 <= ci[1]:
                comp["verdict"] = "tie"
                sentences.append(
                    f"{head}: {win_t} and {other_t} are tied: no significant difference "
                    f"in time to result ({_config(win)} against {_config(other)}; ratio "
                    f"{ratio:.2f}, 95% CI {ci[0]:.2f}-{ci[1]:.2f}) ({cited})."
                )
            else:
                comp["verdict"] = "faster" if ci is not None else "no interval"
                ci_text = (
                    f"95% CI {ci[0]:.2f}-{ci[1]:.2f}x"
                    if ci is not None
                    else "too few jobs for a 95% confidence interval"
                )
                sentences.append(
                    f"{head}: {win_t} is faster than {other_t}: {_config(win)} against "
                    f"{_config(other)}, {ratio or 0:.2f}x ({ci_text}) ({cited})."
                )
            info["comparisons"].append(comp)
    sentences += _cost_sentences(workload, usable)
    sentences += _flagged_sentences(rows, workload, info)
    for target, row in sorted(usable.items()):
        pen = _cold_penalty(rows, workload, target, row["shards"])
        if pen is None:
            continue
        cold, warm, shards, cited = pen
        info["targets"][target]["cold_start_penalty_ms"] = cold - warm
        sentences.append(
            f"{workload} on {target}: a cold start costs {fmt_ms(max(cold - warm, 0.0))} more per "
            f"invocation (median {fmt_ms(cold)} cold against {fmt_ms(warm)} warm at {shards} "
            f"shard(s); rows {', '.join(cited)})."
        )
    return sentences, info


def _training_sentence(t: Training) -> str:
    """One training's final accuracy and its time and cost to the target accuracy."""
    goal = f"{TARGET_ACCURACY:.2f}"
    where = f"{t.workload} on {t.target}, {workers_text(t.workers)}"
    acc = f"{t.test_accuracy:.4f}" if t.test_accuracy is not None else "unknown"
    after = f" after {t.epochs} epoch(s)" if t.epochs else ""
    span = f" in {fmt_ms(t.makespan_ms)}" if t.makespan_ms else ""
    failed = f", {t.failed} invocation(s) failed" if t.failed else ""
    head = f"{where}: final test accuracy {acc}{after}{span}{failed}"
    cite = f"(training {t.label})"
    if not t.accuracy_per_epoch:
        return f"{head}; no per-epoch test accuracy recorded, so no time to {goal} {cite}."
    if t.reached.get("epoch") is None:
        return f"{head}; did not reach {goal} {cite}."
    cost = t.reached.get("cost_usd")
    if cost is None:
        priced = "cost not known (no price for this target)"
    elif t.cost_model:
        priced = f"costing {fmt_usd(cost)} ({t.cost_basis})"
    else:
        priced = f"costing {fmt_usd(cost)} (measured)"
    return (
        f"{head}; reached {goal} at epoch {t.reached['epoch']} after "
        f"{fmt_ms(float(t.reached['elapsed_s']) * 1e3)}, {priced} {cite}."
    )


def _training(trains: Sequence[Training]) -> tuple[list[str], list[dict[str, Any]]]:
    """Per training (workload, target, worker count; memory and repeat when they vary): its
    final accuracy, and the time and cost (measured or modelled, said which) to 0.90."""
    return [_training_sentence(t) for t in trains], [t.as_dict() for t in trains]


def _break_even_sentence(
    workload: str, break_even_rows: Sequence[dict[str, Any]], vm_type: str
) -> tuple[list[str], dict[str, Any] | None]:
    """Where the cheapest function configuration stops paying against the VM type."""
    mine = [
        r for r in break_even_rows if r["workload"] == workload and r["instance_type"] == vm_type
    ]
    if not mine:
        return [], None
    r = min(mine, key=lambda x: x["cost_usd"])
    modelled = r["cost_basis"] != "measured"
    ci = (
        f"95% CI {r['ci95_low']:,.0f}-{r['ci95_high']:,.0f}"
        if r["ci95_low"] is not None
        else "too few jobs for a 95% CI"
    )
    basis = f"MODEL, {r['cost_basis'].removeprefix('model: ')}" if modelled else "measured cost"
    sentence = (
        f"{workload}: the cheapest function configuration ({r['key']}) costs "
        f"{fmt_usd(r['cost_usd'])} per job ({basis}); an always-on {vm_type} "
        f"(${r['instance_hourly_usd']:.4f}/h) is cheaper above {r['break_even_per_hour']:,.0f} "
        f"jobs per hour ({ci}), counting its hourly price only, not the CPU credits a busy "
        "burstable VM pays (the verdict above counts them)."
    )
    info = {k: r[k] for k in ("key", "cost_usd", "cost_basis", "instance_type")}
    info.update(
        jobs_per_hour=r["break_even_per_hour"],
        ci95=[r["ci95_low"], r["ci95_high"]] if r["ci95_low"] is not None else None,
        model=modelled,
    )
    return [sentence], info


def headline(
    data: RunData,
    rows: Sequence[dict[str, Any]],
    break_even_rows: Sequence[dict[str, Any]] = (),
    vm_type: str = "",
    trains: Sequence[Training] | None = None,
    verdict: Mapping[str, dict[str, Any]] | None = None,
    jobs_per_hour: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The headline as data: ``sentences`` (in order) plus the figures behind them.

    Shape (stable; the dashboard reads it as ``headline.json``): ``run_id``, ``sentences``
    (list of str), ``notes`` (incomplete run, skipped lines), ``workloads`` (per workload:
    ``targets`` -> best row, time, cost, cold-start penalty; ``comparisons`` with ratio,
    ``ci95``, ``verdict``; ``break_even`` against ``vm_type`` with ``model`` true when the
    cost is modelled), ``training`` (per training: final accuracy, time and cost to 0.90 with
    the cost's basis and ``cost_model``; see :meth:`Training.as_dict`). ``trains`` are the
    run's trainings (:func:`trainings`), computed here with the packaged prices when None.

    ``verdict`` (per workload, from :func:`serverless_hpc.report.verdict.verdicts`) makes the
    ``answer``: its sentences and :func:`closing_sentence`, first in ``sentences``; what
    came before is ``more``. ``verdict`` is kept as data (``choice``: ``functions`` or
    ``vm``; each side's config, time, cost and their bases; ``changes_at``), with
    ``jobs_per_hour`` the rate (or range) it answers for.
    """
    notes = list(data.incomplete) + bad_line_notes(data)
    answer = [v["sentence"] for _, v in sorted((verdict or {}).items())]
    if answer:
        answer.append(closing_sentence(verdict or {}, rows))
    sentences: list[str] = [f"Incomplete run: {n}." for n in data.incomplete]
    per_workload = {}
    workload_names = sorted({r["workload"] for r in rows})
    samples = _Samples(data)
    for workload in workload_names:
        s, info = _workload_headline(samples, rows, workload)
        sentences += s
        be_sentences, info["break_even"] = _break_even_sentence(workload, break_even_rows, vm_type)
        sentences += be_sentences
        per_workload[workload] = info
    if trains is None:
        from serverless_hpc.pricing_data import load_prices

        trains = trainings(data, load_prices(), load_profile())
    t_sentences, training = _training(trains)
    sentences += t_sentences
    if not rows:
        sentences.append("The run has no usable records.")
    return {
        "run_id": data.run_id,
        "sentences": sentences[: len(data.incomplete)] + answer + sentences[len(data.incomplete) :],
        "answer": answer,
        "more": sentences[len(data.incomplete) :],
        "notes": notes,
        "verdict": dict(verdict or {}),
        "jobs_per_hour": list(jobs_per_hour) if jobs_per_hour else None,
        "workloads": per_workload,
        "training": training,
    }


def closing_sentence(verdict: Mapping[str, dict[str, Any]], rows: Sequence[dict[str, Any]]) -> str:
    """What the verdict's figures are, in one sentence: models from this run unless marked
    measured, the speed factor (said unknown where it is), and what local-faas against
    standalone is."""
    unknown = sorted(w for w, v in verdict.items() if "unknown" in str(v["speed_factor_source"]))
    known = sorted(w for w in verdict if w not in unknown)
    speed = (
        "a cloud vCPU is taken as fast as this machine's (speed factor 1.0: unknown)"
        if not known
        else "speed factors from this machine's vCPU to a cloud vCPU as the platform profile "
        "gives them" + (f" (unknown, 1.0, for {', '.join(unknown)})" if unknown else "")
    )
    targets = {r["target"] for r in rows}
    check = (
        "; local-faas against standalone, below, is an emulation check on this machine, "
        "not the cloud answer"
        if targets & LOCAL_TARGETS == LOCAL_TARGETS
        else ""
    )
    return (
        "Figures marked model are projected from this run's measurements with Lambda's and "
        f"EC2's published prices, limits, boot time and CPU credits; {speed}{check}."
    )


def dashboard_verdict(run_dir: Path) -> list[str] | None:
    """The verdict sentences of a finished run for the dashboard's run list: one per
    workload, from its ``headline.json`` (None when it has none: an older or unfinished run,
    or an unreadable file, which is logged)."""
    path = paths(run_dir).headline
    try:
        data = json.loads(read_text(path, max_bytes=MAX_HEADLINE_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return verdict_sentences(data)


def verdict_sentences(data: object) -> list[str] | None:
    """The verdict sentences of a parsed ``headline.json`` (None when it holds none)."""
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if not isinstance(verdict, dict) or not verdict:
        return None
    out = [
        str(v["sentence"])
        for _, v in sorted(verdict.items())
        if isinstance(v, dict) and isinstance(v.get("sentence"), str)
    ]
    return out or None
