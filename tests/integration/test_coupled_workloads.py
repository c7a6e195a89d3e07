"""Coupled workloads through the driver: rounds on the local targets, the store between them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serverless_hpc.driver import BenchConfig, BenchError, count_invocations, run
from serverless_hpc.report import build_report
from serverless_hpc.report.coupled import coupled_rows, from_run
from serverless_hpc.rundir import read_records
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.workloads.stencil import ALPHA

pytestmark = pytest.mark.integration


def _bench(
    tmp_path: Path, workload: str, params: dict, shards: tuple[int, ...] = (1, 4)
) -> tuple[BenchConfig, list[dict]]:
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas", "standalone"),
        workloads=(workload,),
        shards=shards,
        repeats=1,
        modes=("natural",),
        params={workload: params},
        settings=TargetSettings(log_dir=tmp_path / "logs", store_uri=str(tmp_path / "store")),
        run_id="coupled",
    )
    result = run(cfg)
    assert result.failed == 0
    lines = (cfg.out / "batches.jsonl").read_text().splitlines()
    return cfg, [json.loads(line) for line in lines]


def _scratch_left(tmp_path: Path) -> list[Path]:
    root = tmp_path / "store" / "scratch"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_stencil_runs_in_rounds_on_both_local_targets(tmp_path: Path) -> None:
    from serverless_hpc.workloads.stencil import kernel

    # GIVEN a 40x40 field, 6 steps, 2 a round, at 1 and 4 tiles, on both local targets, both
    # exchanging halos through the store (standalone, a VM, would otherwise do it in memory)
    params = {"n": 40, "steps": 6, "steps_per_round": 2, "seed": 2, "exchange": "store"}
    cfg, batches = _bench(tmp_path, "stencil", params)
    # THEN every batch ends in the single-process field, bit for bit
    want = kernel.digest(kernel.reference(40, 6, 2, ALPHA))
    assert {(b["target"], b["shards"]) for b in batches} == {
        (t, s) for t in ("local-faas", "standalone") for s in (1, 4)
    }
    assert all(b["sha256"] == want and b["matches_single_process"] for b in batches)
    assert all((b["n"], b["steps"], b["seed"], b["alpha"]) == (40, 6, 2, ALPHA) for b in batches)
    assert all(b["rounds"] == 3 and b["total_bytes_written"] > 0 for b in batches)
    # AND each record carries its round, its role and its store I/O
    records = read_records(cfg.out / "records.jsonl")
    assert len(records) == count_invocations(cfg, lambda _: True)
    four = [r for r in records if r["shards"] == 4 and r["target"] == "standalone"]
    assert sorted((r["round"], r["role"]) for r in four) == sorted(
        [(k, "worker") for k in range(3) for _ in range(4)] + [(2, "combine")]
    )
    for r in four:
        io = r["result"]["round_io"]
        assert set(io) == {
            "compute_ms",
            "store_read_ms",
            "store_write_ms",
            "bytes_read",
            "bytes_written",
            "store_reads",
            "store_writes",
        }
        if r["role"] == "combine":  # it reads the last round's tiles, and writes nothing
            assert io["bytes_read"] == 8 * 40 * 40 + 4 * 128 and io["bytes_written"] == 0
            assert (io["store_reads"], io["store_writes"]) == (4, 0)
        else:
            assert io["bytes_written"] > 0 and (io["bytes_read"] > 0 or r["round"] == 0)
            # a tile of the 2x2 grid: its own tile and 3 neighbours' halo pieces, each way
            # (round 0 generates its block; the last round's halos are never read)
            assert io["store_reads"] == (0 if r["round"] == 0 else 4)
            assert io["store_writes"] == (1 if r["round"] == 2 else 4)
    # AND the report's coupled table splits every round's time and counts the bytes moved
    rows = coupled_rows(records)
    assert from_run(cfg.out, batches) == rows  # what the report builds, from the record file
    assert {(r.target, r.shards) for r in rows} == {(b["target"], b["shards"]) for b in batches}
    assert all(r.rounds == 3 and r.mb_moved > 0 and r.compute_ms > 0 for r in rows)
    build_report(cfg.out, plots=False)
    page = (cfg.out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("Coupled work: where a round") :]
    section = section[: section.index("</table>")]
    assert section.count('<tr><td class="l">stencil</td>') == len(rows)
    # AND every job's scratch prefix was deleted once it succeeded
    assert _scratch_left(tmp_path) == []


def test_kmers_shuffle_runs_through_the_driver(tmp_path: Path) -> None:
    params = {"genome_len": 5000, "reads": 800, "read_len": 50, "k": 15}
    _, batches = _bench(tmp_path, "kmers", params, shards=(2,))
    assert all(b["matches_single_process"] and b["input"] == "synthetic" for b in batches)
    assert len({b["counts_sha256"] for b in batches}) == 1
    assert _scratch_left(tmp_path) == []


def test_staged_matmul_runs_through_the_driver(tmp_path: Path) -> None:
    _, batches = _bench(tmp_path, "matmul", {"n": 64, "block": 16, "staged": True})
    assert all(b["max_rel_error"] <= 1e-9 and b["checked_blocks"] == 4 for b in batches)
    assert _scratch_left(tmp_path) == []


def test_a_job_stops_after_a_failed_round_and_says_why(tmp_path: Path) -> None:
    # GIVEN a stencil whose functions find a file where their scratch directory should be
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "scratch").write_text("not a directory")
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas",),
        workloads=("stencil",),
        shards=(4,),
        repeats=1,
        modes=("natural",),
        params={"stencil": {"n": 16, "steps": 4}},
        settings=TargetSettings(log_dir=tmp_path / "logs", store_uri=str(tmp_path / "store")),
        run_id="bad",
    )
    result = run(cfg)
    # THEN the first round's invocations fail saying why, and the job stops there
    records = read_records(cfg.out / "records.jsonl")
    assert result.failed == 4 and len(records) == 4
    assert all("NotADirectoryError" in str(r["error"]) for r in records)
    (batch,) = [json.loads(x) for x in (cfg.out / "batches.jsonl").read_text().splitlines()]
    assert "sha256" not in batch


def test_a_bad_option_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"stencil\.alpha: 0\.5 is outside"):
        BenchConfig(
            out=tmp_path / "run",
            targets=("local-faas",),
            workloads=("stencil",),
            params={"stencil": {"alpha": 0.5}},
        )


def test_the_in_memory_baseline_runs_as_one_invocation_on_standalone(tmp_path: Path) -> None:
    from serverless_hpc.workloads.stencil import kernel

    # GIVEN the VM baseline: 4 tiles as processes of one machine, halos in shared memory
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("standalone",),
        workloads=("stencil",),
        shards=(4,),
        repeats=1,
        modes=("natural",),
        # no exchange given: a VM target plans the coupled-node form by itself
        params={"stencil": {"n": 40, "steps": 6, "seed": 2}},
        settings=TargetSettings(log_dir=tmp_path / "logs", store_uri=str(tmp_path / "store")),
        run_id="vm",
    )
    assert run(cfg).failed == 0
    # THEN one invocation ran the whole job, to the single-process field
    (rec,) = read_records(cfg.out / "records.jsonl")
    assert (rec["round"], rec["role"], rec["shards"]) == (0, "worker", 4)
    # AND the driver counted it so (run.json's plan is what the run left)
    assert json.loads((cfg.out / "run.json").read_text())["planned_invocations"] == 1
    (batch,) = [json.loads(x) for x in (cfg.out / "batches.jsonl").read_text().splitlines()]
    assert batch["exchange"] == "memory" and batch["tiles"] == 4
    assert batch["sha256"] == kernel.digest(kernel.reference(40, 6, 2, ALPHA))
    assert batch["total_bytes_written"] == 0.0


def test_the_report_answers_functions_or_vm_and_where_the_store_overtakes(
    tmp_path: Path,
) -> None:
    from serverless_hpc.report.coupled_answer import from_run as answer_from_run
    from serverless_hpc.report.profile import load_profile

    # GIVEN a small stencil on local-faas (tiles through the store) and on standalone (a VM:
    # it plans the coupled-node form by itself, the tiles in memory), at 1 and 4 tiles
    params = {"n": 40, "steps": 6, "steps_per_round": 2, "seed": 2}
    cfg, batches = _bench(tmp_path, "stencil", params)
    # THEN the answer puts the VM's time for the same job beside the functions' at each fan-out
    answer = answer_from_run(cfg.out, batches, load_profile())
    assert answer is not None and answer.no_vm == []
    assert [(b.row.target, b.row.shards) for b in answer.beside] == [
        ("local-faas", 1),
        ("local-faas", 4),
    ]
    for b in answer.beside:
        (vm,) = b.vm
        assert (vm.target, vm.shards, vm.in_memory) == ("standalone", b.row.shards, True)
        assert vm.job_ms > 0 and b.row.job_ms > 0 and b.vm_over_functions is not None
    # AND the model of Lambda with S3 takes the functions' measured compute and traffic
    (c,) = answer.crossovers
    assert (c.workload, c.target, c.measured_fanouts) == ("stencil", "local-faas", (1, 4))
    assert all(p.store_ms > 0 and p.compute_ms > 0 for p in c.projections)
    # a 40x40 field computes in well under the 30 ms of one GET: store-bound from the start
    assert c.fanout == 1
    # AND the report shows the split, the VM beside the functions and the model, so labelled
    build_report(cfg.out, plots=False)
    page = (cfg.out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("Coupled work: where a round") : page.index("Environment and")]
    for head in ("<th>compute</th>", "<th>store I/O</th>", "<th>overhead</th>"):
        assert head in section
    assert "Functions or the VM for the same job" in section
    assert section.count("standalone (in memory): ") == 2
    assert "at a fan-out of 1 (model)" in section
    model = section[section.index("where communication overtakes compute (a model)") :]
    heads = model[model.index("<table>") : model.index("</tr>")]
    projected = [h for h in heads.split("<th") if "round" in h or "store" in h]
    assert projected and all("model" in h for h in projected)
    assert load_profile().store.as_of in model  # type: ignore[union-attr]
    assert "optimizing-performance.html" in model  # the sources are listed


def test_the_report_says_when_no_vm_ran_the_job(tmp_path: Path) -> None:
    cfg = BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas",),
        workloads=("stencil",),
        shards=(2,),
        repeats=1,
        modes=("natural",),
        params={"stencil": {"n": 24, "steps": 2, "steps_per_round": 1}},
        settings=TargetSettings(log_dir=tmp_path / "logs", store_uri=str(tmp_path / "store")),
        run_id="novm",
    )
    assert run(cfg).failed == 0
    build_report(cfg.out, plots=False)
    page = (cfg.out / "report.html").read_text(encoding="utf-8")
    assert "stencil: no VM run of the job is in the run" in page
    assert "no VM run of the job in the run</td>" in page
