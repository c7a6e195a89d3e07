"""The coupled-work table: a round's time split into compute, store I/O and overhead."""

from __future__ import annotations

import pytest

from serverless_hpc.report.coupled import coupled_rows, table_text


def _rec(rnd: int, shard: int, t0: float, client_ms: float, io: dict | None, **kw: object) -> dict:
    result = {"round_io": io} if io is not None else {}
    return {
        "workload": "stencil",
        "target": "local-faas",
        "shards": 2,
        "memory_mb": None,
        "mode": "natural",
        "repeat": 0,
        "shard": shard,
        "round": rnd,
        "ok": True,
        "t_send": t0,
        "t_recv": t0 + client_ms / 1e3,
        "client_ms": client_ms,
        "result": result,
        **kw,
    }


def test_a_round_splits_into_compute_store_and_overhead() -> None:
    io = {"compute_ms": 60.0, "store_read_ms": 10.0, "store_write_ms": 20.0}
    io |= {"bytes_read": 1e6, "bytes_written": 2e6}
    records = [
        _rec(0, 0, 100.0, 100.0, io),
        _rec(0, 1, 100.05, 100.0, io),  # sent 50 ms later: the round took 150 ms
        _rec(1, 0, 101.0, 100.0, io),
        _rec(1, 1, 101.0, 100.0, io),
        _rec(1, 1, 101.0, 100.0, io, ok=False),  # a failed attempt: not counted
        _rec(0, 0, 99.0, 5.0, None),  # no round_io (a training): not counted
    ]
    (row,) = coupled_rows(records)
    assert (row.workload, row.target, row.shards, row.jobs, row.rounds) == (
        "stencil",
        "local-faas",
        2,
        1,
        2.0,
    )
    assert row.makespan_ms == pytest.approx(125.0)  # 150 and 100
    assert (row.compute_ms, row.store_ms, row.overhead_ms) == pytest.approx((120.0, 60.0, 20.0))
    assert row.mb_moved == pytest.approx(6.0)
    assert row.store_share == pytest.approx(0.3)
    assert "stencil" in table_text([row]) and table_text([]) == ""


def test_the_vm_time_for_the_same_job_stands_beside_the_functions() -> None:
    from serverless_hpc.report.coupled_answer import answer
    from serverless_hpc.report.profile import load_profile

    io = {"compute_ms": 60.0, "store_read_ms": 10.0, "store_write_ms": 20.0}
    io |= {"bytes_read": 1e6, "bytes_written": 2e6, "store_reads": 2.0, "store_writes": 1.0}
    functions = [
        _rec(0, 0, 100.0, 100.0, io),
        _rec(0, 1, 100.0, 100.0, io),
        _rec(1, 0, 100.2, 100.0, io),  # the job: 100.0 s to 100.3 s
        _rec(1, 1, 100.2, 100.0, io),
    ]
    # GIVEN the same job on a VM at the same fan-out, in memory (no bytes through the store),
    # and the other workload with no VM run
    in_memory = {"compute_ms": 50.0, "store_read_ms": 0.0, "store_write_ms": 0.0}
    in_memory |= {"bytes_read": 0.0, "bytes_written": 0.0}
    vm = _rec(0, 0, 200.0, 150.0, in_memory, target="standalone")
    other = [{**r, "workload": "kmers"} for r in functions]
    a = answer([*functions, vm, *other], load_profile())
    # THEN each functions' row has the VM's job beside it, or none, and the run says which
    # workload no VM ran
    by_workload = {b.row.workload: b for b in a.beside}
    stencil, kmers = by_workload["stencil"], by_workload["kmers"]
    assert stencil.row.job_ms == pytest.approx(300.0)
    (v,) = stencil.vm
    assert (v.target, v.shards, v.form) == ("standalone", 2, "in memory")
    assert v.job_ms == pytest.approx(150.0) and stencil.vm_over_functions == pytest.approx(0.5)
    assert kmers.vm == () and kmers.vm_over_functions is None
    assert a.no_vm == ["kmers"]
    # AND the model is made from the functions' jobs only (the VM's moved nothing)
    assert {(c.workload, c.target) for c in a.crossovers} == {
        ("kmers", "local-faas"),
        ("stencil", "local-faas"),
    }


def _job(shards: int, repeat: int, io: dict, *, failed: int = 0) -> list[dict]:
    """One job of ``shards`` workers in one round; the last ``failed`` of them fail."""
    return [
        _rec(0, s, 100.0 + repeat, 100.0, io, shards=shards, repeat=repeat)
        | ({"ok": False, "result": None} if s >= shards - failed else {})
        for s in range(shards)
    ]


def test_a_job_with_a_failed_worker_is_left_out_of_the_model() -> None:
    """A part short of a function would be taken for a fixed-size part: its compute dropped."""
    from serverless_hpc.report.coupled import round_parts

    io = {"compute_ms": 400.0, "store_read_ms": 10.0, "store_write_ms": 20.0}
    io |= {"bytes_read": 1e6, "bytes_written": 1e6, "store_reads": 2.0, "store_writes": 1.0}
    whole = [*_job(4, 0, io), *_job(8, 1, io)]
    # GIVEN the same fan-out 8 measured again, once with one worker failing
    broken = [*whole, *_job(8, 2, io, failed=1)]
    parts, parts_broken = round_parts(whole), round_parts(broken)
    # THEN the failed job does not change the parts (8 functions at fan-out 8)
    assert parts == parts_broken
    ((p,),) = [v for k, v in parts_broken.items() if k[2] == 8]
    assert p.functions == 8


def test_records_without_request_counts_are_not_modelled_as_zero_requests() -> None:
    from serverless_hpc.report.coupled_answer import answer
    from serverless_hpc.report.profile import load_profile

    io = {"compute_ms": 400.0, "store_read_ms": 10.0, "store_write_ms": 20.0}
    io |= {"bytes_read": 1e6, "bytes_written": 1e6}
    counted = io | {"store_reads": 2.0, "store_writes": 1.0}
    old = [*_job(4, 0, io), *_job(8, 1, io)]
    new = [{**r, "workload": "kmers"} for r in [*_job(4, 0, counted), *_job(8, 1, counted)]]
    a = answer([*old, *new], load_profile())
    # THEN only the workload with counts is modelled; the other is named in a note
    assert {c.workload for c in a.crossovers} == {"kmers"}
    assert any(n.startswith("stencil on local-faas: its records carry no store") for n in a.notes)
