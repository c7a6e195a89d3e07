"""Trainings longer than one function, without TensorFlow: checkpoints as bytes, averaging,
the deadline on every platform's clock, the chain and round plans, and the driver's loops
against a test double target."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serverless_hpc import chain, driver
from serverless_hpc.contract import (
    EXPORT_MISMATCH,
    INVALID_REQUEST,
    OUT_OF_MEMORY,
    TIMEOUT,
    InvalidRequest,
    error_response,
)
from serverless_hpc.driver import chained
from serverless_hpc.driver.batchline import clean_scratch, training_summary
from serverless_hpc.driver.chained import run_chain
from serverless_hpc.driver.context import RunContext
from serverless_hpc.driver.rounds import run_rounds
from serverless_hpc.invocation import Outcome
from serverless_hpc.rundir import RecordWriter
from serverless_hpc.store import LocalStore
from serverless_hpc.targets.base import Target, TargetSettings
from serverless_hpc.workloads.base import (
    Context,
    deadline_from_epoch_ms,
    deadline_from_remaining_ms,
    deadline_from_timeout,
)
from serverless_hpc.workloads.train import checkpoint as ck
from serverless_hpc.workloads.train.function import DEADLINE_MARGIN_S, EPOCH_SAFETY, fits
from serverless_hpc.workloads.train.model import epoch_arrays
from serverless_hpc.workloads.train.params import TrainParams

# -- checkpoints ---------------------------------------------------------------------------


def _ckpt() -> ck.Checkpoint:
    rng = np.random.default_rng(7)
    rng.random(5)  # a generator part-way through its stream
    return ck.Checkpoint(
        model=[np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, 9], dtype=np.int64)],
        optimizer=[np.array(12, dtype=np.int64), np.full((2, 3), 0.25, dtype=np.float32)],
        epoch=4,
        rng_state=dict(rng.bit_generator.state),
        params={"epochs": 15, "seed": 42},
        progress=[{"epoch": 4, "test_accuracy": 0.88, "epoch_s": 12.5}],
    )


def test_a_checkpoint_survives_bytes_exactly() -> None:
    # GIVEN a checkpoint WHEN it goes to bytes and back THEN every array and field is equal
    a = _ckpt()
    b = ck.Checkpoint.from_bytes(a.to_bytes())
    assert [x.dtype for x in b.model] == [x.dtype for x in a.model]
    for x, y in zip(a.model + a.optimizer, b.model + b.optimizer, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (b.epoch, b.params, b.progress) == (a.epoch, a.params, a.progress)
    # and the data-order generator continues where it stopped
    g1, g2 = np.random.default_rng(), np.random.default_rng()
    g1.bit_generator.state, g2.bit_generator.state = a.rng_state, b.rng_state
    np.testing.assert_array_equal(g1.permutation(100), g2.permutation(100))


def test_garbage_is_not_a_checkpoint() -> None:
    with pytest.raises(ValueError, match="not a training checkpoint"):
        ck.Checkpoint.from_bytes(b"PK\x03\x04 not really")


def test_chains_have_separate_keys_and_bad_ids_are_refused() -> None:
    a = ck.checkpoint_key("m", chain.chain_id("run1", "local-faas", 0))
    b = ck.checkpoint_key("m", chain.chain_id("run1", "standalone", 0))
    c = ck.checkpoint_key("m", chain.chain_id("run2", "local-faas", 0))
    d = ck.worker_key("m", chain.chain_id("run1", "local-faas", 0, 4), 0, 1)
    assert len({a, b, c, d}) == 4
    assert all(k.startswith("models/m/checkpoints/") for k in (a, b, c, d))
    for bad in ("../x", "a//b", "", "a/b/c/d/e", "x" * 201):
        with pytest.raises(InvalidRequest, match=r"params\.chain"):
            ck.check_chain(bad)


def test_averaging_hand_made_weights() -> None:
    # GIVEN two workers' float weights and integer counters
    w1 = [np.array([[1.0, 2.0]], dtype=np.float32), np.array(10, dtype=np.int64)]
    w2 = [np.array([[3.0, 6.0]], dtype=np.float32), np.array(12, dtype=np.int64)]
    w3 = [np.array([[2.0, 1.0]], dtype=np.float32), np.array(11, dtype=np.int64)]
    avg = ck.average([w1, w2, w3])
    # THEN floats are the mean in their own dtype, counters the largest value
    np.testing.assert_array_equal(avg[0], np.array([[2.0, 3.0]], dtype=np.float32))
    assert avg[0].dtype == np.float32
    assert int(avg[1]) == 12
    # one worker averages to itself
    np.testing.assert_array_equal(ck.average([w1])[0], w1[0])


def test_averaging_refuses_mismatched_workers() -> None:
    w1 = [np.zeros((2, 2), dtype=np.float32)]
    with pytest.raises(ValueError, match="shapes"):
        ck.average([w1, [np.zeros((2, 3), dtype=np.float32)]])
    with pytest.raises(ValueError, match="variable counts"):
        ck.average([w1, [*w1, *w1]])
    with pytest.raises(ValueError, match="nothing"):
        ck.average([])


def test_store_deletes_a_prefix_and_nothing_else(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ("models/m/checkpoints/r/a/checkpoint.npz", "models/m/checkpoints/r/a/x/y"):
        store.put_bytes(key, b"1")
    store.put_bytes("models/m/checkpoints/r/b/checkpoint.npz", b"2")
    assert store.delete_prefix("models/m/checkpoints/r/a") == 2
    assert not store.exists("models/m/checkpoints/r/a/checkpoint.npz")
    assert store.exists("models/m/checkpoints/r/b/checkpoint.npz")
    assert store.delete_prefix("models/m/checkpoints/r/a") == 0


# -- the data order ----------------------------------------------------------------------


def test_the_data_order_depends_only_on_the_generator_state() -> None:
    x = np.arange(20, dtype=np.float32).reshape(5, 2, 2, 1)
    y = np.arange(5, dtype=np.int32)
    g = np.random.default_rng(1)
    epoch_arrays(x, y, g, augment=True)  # epoch 1
    saved = dict(g.bit_generator.state)
    x2a, y2a = epoch_arrays(x, y, g, augment=True)  # epoch 2, uninterrupted
    resumed = np.random.default_rng(999)
    resumed.bit_generator.state = saved
    x2b, y2b = epoch_arrays(x, y, resumed, augment=True)  # epoch 2 after a resume
    np.testing.assert_array_equal(x2a, x2b)
    np.testing.assert_array_equal(y2a, y2b)
    # every image is still there once, flipped or not
    assert sorted(y2a.tolist()) == list(range(5))
    for img, label in zip(x2a, y2a, strict=True):
        assert np.array_equal(img, x[label]) or np.array_equal(img, x[label][:, ::-1, :])


# -- the deadline, on each platform's clock ----------------------------------------------


def test_lambda_deadline_from_remaining_time() -> None:
    assert deadline_from_remaining_ms(90_500, now=1000.0) == pytest.approx(1090.5)


def test_lambda_adapter_reads_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from serverless_hpc.aws.function import adapter as runtime

    monkeypatch.setattr(runtime.time, "time", lambda: 5000.0)
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 12_000)
    assert runtime._deadline_of(context) == pytest.approx(5012.0)
    assert runtime._deadline_of(SimpleNamespace()) is None


def test_openwhisk_deadline_is_epoch_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deadline_from_epoch_ms("1796040060000") == pytest.approx(1796040060.0)
    assert deadline_from_epoch_ms(None) is None
    assert deadline_from_epoch_ms("") is None
    assert deadline_from_epoch_ms("soon") is None
    from openwhisk import action

    monkeypatch.setenv("__OW_DEADLINE", "1796040060000")
    assert action._context({}).deadline == pytest.approx(1796040060.0)
    monkeypatch.delenv("__OW_DEADLINE")
    assert action._context({}).deadline is None


def test_local_faas_deadline_is_the_timeout_from_the_send_time() -> None:
    assert deadline_from_timeout(60.0, now=100.0) == 160.0


def test_the_local_worker_passes_the_deadline_to_the_workload() -> None:
    from serverless_hpc import worker

    assert worker._context(1234.5).deadline == 1234.5
    assert worker._context(None).deadline is None
    assert worker._context(True).deadline is None  # not a number


def test_remaining_time_uses_the_given_clock() -> None:
    assert Context(deadline=100.0).remaining_s(now=lambda: 40.0) == 60.0
    assert Context().remaining_s(now=lambda: 40.0) is None  # standalone, EC2


def test_an_epoch_fits_only_with_its_safety_margin() -> None:
    progress = [{"epoch_s": 10.0, "eval_s": 2.0}, {"epoch_s": 8.0}]
    need = 12.0 * EPOCH_SAFETY + 0.5 + DEADLINE_MARGIN_S
    assert fits(need, progress, checkpoint_s=0.5)
    assert not fits(need - 0.01, progress, checkpoint_s=0.5)
    assert fits(None, progress, checkpoint_s=0.5)  # no deadline
    # one slow epoch long ago no longer counts once two quicker ones followed it
    slow_then_quick = [{"epoch_s": 80.0}, {"epoch_s": 40.0}, {"epoch_s": 41.0}]
    assert fits(41.0 * EPOCH_SAFETY + DEADLINE_MARGIN_S, slow_then_quick, checkpoint_s=0.0)
    assert not fits(41.0 * EPOCH_SAFETY + DEADLINE_MARGIN_S, slow_then_quick[:2], 0.0)


def test_workers_split_the_global_batch_so_a_round_takes_a_single_epochs_steps() -> None:
    from serverless_hpc.workloads.train.data_parallel import worker_steps
    from serverless_hpc.workloads.train.model import steps
    from serverless_hpc.workloads.train.params import worker_batch

    single = TrainParams.model_validate({})
    for workers, expected in ((1, 128), (2, 64), (3, 43), (4, 32), (64, 2)):
        dp = TrainParams.model_validate(
            {"workers": workers, "round": 0, "chain": "r/c"} if workers > 1 else {}
        )
        assert worker_batch(dp) == expected
        if workers <= 4:  # rounding aside, a round has as many steps as a single epoch
            assert worker_steps(dp, 60_000) == pytest.approx(
                steps(60_000, single.batch_size), rel=0.01
            )
    tiny = TrainParams.model_validate({"workers": 64, "round": 0, "chain": "r/c", "batch_size": 8})
    assert worker_batch(tiny) == 1


def test_data_parallel_params_are_checked() -> None:
    TrainParams.model_validate({"workers": 2, "round": 0, "worker": 1, "chain": "r/c"})
    for bad in (
        {"workers": 2, "round": 0},  # no chain
        {"workers": 2, "chain": "r/c"},  # no round
        {"workers": 2, "round": 0, "worker": 2, "chain": "r/c"},
        {"workers": 2, "round": 15, "chain": "r/c"},  # past the last round (15 epochs)
        {"worker": 0},  # not data-parallel
    ):
        with pytest.raises(ValueError):
            TrainParams.model_validate(bad)


# -- the plans ---------------------------------------------------------------------------


def _step(state: chain.ChainState, result: Any = None, error: str | None = None) -> chain.Step:
    return chain.next_step(state, error is None, result, error, leg_bound=6)


def test_a_chain_goes_on_while_it_continues_and_stops_when_done() -> None:
    s = chain.ChainState()
    assert _step(s, {"status": "continue", "epoch": 3}) is chain.Step.AGAIN
    assert _step(s, {"status": "continue", "epoch": 6}) is chain.Step.AGAIN
    assert _step(s, {"status": "done"}) is chain.Step.DONE
    assert (s.legs, s.epoch) == (3, 6)


def test_a_killed_leg_is_resumed_but_not_forever() -> None:
    s = chain.ChainState()
    assert _step(s, error=TIMEOUT) is chain.Step.AGAIN
    assert _step(s, {"status": "continue", "epoch": 1}) is chain.Step.AGAIN
    assert _step(s, error=OUT_OF_MEMORY) is chain.Step.AGAIN
    assert _step(s, error=TIMEOUT) is chain.Step.FAIL  # twice in a row


def test_errors_a_resume_cannot_fix_stop_the_chain() -> None:
    for error in (INVALID_REQUEST, EXPORT_MISMATCH):
        assert _step(chain.ChainState(), error=error) is chain.Step.FAIL


def test_a_chain_that_makes_no_progress_stops() -> None:
    s = chain.ChainState()
    assert _step(s, {"status": "continue", "epoch": 2}) is chain.Step.AGAIN
    assert _step(s, {"status": "continue", "epoch": 2}) is chain.Step.AGAIN
    assert _step(s, {"status": "continue", "epoch": 2}) is chain.Step.FAIL


def test_a_chain_stops_at_its_leg_bound() -> None:
    s = chain.ChainState()
    steps = [_step(s, {"status": "continue", "epoch": e}) for e in range(1, 7)]
    assert steps[:5] == [chain.Step.AGAIN] * 5 and steps[5] is chain.Step.FAIL


def test_round_requests_share_the_start_and_split_the_workers() -> None:
    base = {"workload": "train", "params": {"epochs": 3, "chain": "r/c"}, "run_id": "r"}
    workers, combine = chain.round_requests(base, 4, 2)
    assert [w["params"]["worker"] for w in workers] == [0, 1, 2, 3]
    assert all(w["params"]["round"] == 2 and w["params"]["workers"] == 4 for w in workers)
    assert "worker" not in combine["params"] and combine["params"]["round"] == 2
    assert base["params"] == {"epochs": 3, "chain": "r/c"}  # not mutated


def test_train_s_round_plan_is_the_data_parallel_rounds() -> None:
    from serverless_hpc.workloads import train

    plan = train.SPEC.rounds
    assert plan is not None
    params = {"epochs": 3, "syncs_per_epoch": 2, "chain": "r/c"}
    # one worker trains as a chain, not in rounds; N workers in epochs x syncs rounds
    assert plan.rounds(params, 1) == 0 and plan.rounds(params, 4) == 6
    base = {"workload": "train", "params": params, "run_id": "r"}
    workers, combine = plan.requests(params, 4, 5)
    old_workers, old_combine = chain.round_requests(base, 4, 5)
    assert workers == [w["params"] for w in old_workers] and combine == old_combine["params"]


def test_curve_and_time_to_accuracy() -> None:
    legs = [chain.Leg(100.0, 160.0, 0.06), chain.Leg(160.0, 200.0, 0.04)]
    progress = [
        {"epoch": 1, "test_accuracy": 0.85, "t_unix": 130.0},
        {"epoch": 2, "test_accuracy": 0.91, "t_unix": 160.0},
        {"epoch": 3, "test_accuracy": 0.92, "t_unix": 180.0},
    ]
    points = chain.curve(legs, progress, t0=100.0, accuracy_key="test_accuracy")
    assert [p["accuracy"] for p in points] == [0.85, 0.91, 0.92]
    assert [p["elapsed_s"] for p in points] == [30.0, 60.0, 80.0]
    assert [round(p["cost_usd"], 6) for p in points] == [0.03, 0.06, 0.08]  # pro rata
    assert chain.time_to(points) == {
        "epoch": 2,
        "elapsed_s": 60.0,
        "cost_usd": points[1]["cost_usd"],
    }
    assert chain.time_to(points, 0.95)["epoch"] is None
    unpriced = chain.curve([chain.Leg(100.0, 200.0, None)], progress, t0=100.0)
    assert all(p["cost_usd"] is None for p in unpriced)


def _cfg(tmp_path: Path, **kw: Any) -> driver.BenchConfig:
    return driver.BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas",),
        workloads=("train",),
        run_id="run1",
        **({"params": {"train": {"epochs": 3}}} | kw),
    )


def test_the_plan_gives_each_training_its_own_chain(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, train_workers=(1, 4), train_repeats=2)
    batches = list(driver.plan(cfg, "local-faas"))
    assert [(b.workers, b.repeat) for b in batches] == [(1, 0), (1, 1), (4, 0), (4, 1)]
    # a data-parallel training fans out to its workers: its batch says so, as its records do
    assert [b.shards for b in batches] == [1, 1, 4, 4]
    chains = {b.requests[0]["params"]["chain"] for b in batches}
    assert chains == {
        "run1/local-faas-r0",
        "run1/local-faas-r1",
        "run1/local-faas-r0-w4",
        "run1/local-faas-r1-w4",
    }
    # a chain counts one invocation and its 3 epochs apart; 4 workers x 3 rounds + 3 combines
    # count 15 invocations, per repeat
    assert driver.count_invocations(cfg, lambda t: True) == 2 * 1 + 2 * 15
    assert driver.count_epochs(cfg) == 2 * 3


def test_workers_need_a_data_parallel_workload(tmp_path: Path) -> None:
    with pytest.raises(driver.BenchError, match="train-workers"):
        driver.BenchConfig(out=tmp_path, workloads=("classify",), train_workers=(2,))
    for bad in ((0,), (1, 65), ()):
        with pytest.raises(driver.BenchError, match="train-workers must be >= 1 and at most 64"):
            _cfg(tmp_path, train_workers=bad)


# -- the driver's loops against a test double -----------------------------------------------


class ScriptedTrainDouble(Target):
    """Test double: answers each train invocation from a script of outcomes (no training).

    It records the requests it received and returns ``script[i]`` for the i-th request;
    data-parallel requests (with ``workers``) are answered by :meth:`round_reply`.
    """

    name = "local-faas"

    def __init__(self, script: list[dict[str, Any]], scratch: LocalStore | None = None) -> None:
        super().__init__(TargetSettings())
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.store = scratch
        self.clock = 1000.0

    def scratch_store(self) -> LocalStore | None:
        return self.store

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        with self.lock:
            self.requests.append(request)
            if "workers" in request["params"]:
                return Outcome(response=self.round_reply(request["params"]), cold=False)
            reply = self.script[len(self.requests) - 1]
        return Outcome(response=reply, cold=False, cost_usd=0.01)

    def round_reply(self, p: dict[str, Any]) -> dict[str, Any]:
        if "worker" in p:
            return _ok({"status": "done", "round": p["round"], "worker": p["worker"], "items": 10})
        last = p["round"] + 1 == p["epochs"]
        # like the real combine step: the whole history so far
        entries = [
            {"epoch": r + 1, "test_accuracy": 0.8 + 0.05 * r, "t_unix": 2e9}
            for r in range(p["round"] + 1)
        ]
        return _ok(
            {
                "status": "done" if last else "continue",
                "round": p["round"],
                "epoch": p["round"] + 1,
                "progress": entries,
                **(
                    {"version": "v1", "test_accuracy": 0.9, "scratch": "models/m/checkpoints/x"}
                    if last
                    else {}
                ),
            }
        )


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "workload": "train",
        "result": result,
        "timings": {},
        "cold_start": False,
        "runtime": {},
    }


def _run(
    cfg: driver.BenchConfig, target: Target, runner: Any, progress: Any = None
) -> tuple[list[Any], list[Any]]:
    batch = next(driver.plan(cfg, "local-faas"))
    cfg.out.mkdir(parents=True)
    writer = RecordWriter(cfg.out / "records.jsonl")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        try:
            ctx = RunContext(cfg, target, writer, pool, threading.Event(), progress)
            return runner(ctx, batch)
        finally:
            writer.close()


def test_the_driver_chains_legs_through_a_kill_and_cleans_up(tmp_path: Path) -> None:
    # GIVEN a training that stops in time once, is killed once, then finishes
    store = LocalStore(tmp_path / "store")
    cfg = _cfg(tmp_path)
    params = next(driver.plan(cfg, "local-faas")).requests[0]["params"]
    prefix = chain.scratch_prefix(params["model"], params["chain"])
    store.put_bytes(f"{prefix}/checkpoint.npz", b"x")
    progress = [{"epoch": 1, "test_accuracy": 0.91, "t_unix": 2e9}]
    script = [
        _ok({"status": "continue", "epoch": 1, "progress": progress}),
        error_response(TIMEOUT, "killed"),
        _ok(
            {
                "status": "done",
                "epoch": 3,
                "version": "v1",
                "test_accuracy": 0.92,
                "progress": progress,
                "scratch": prefix,
            }
        ),
    ]
    target = ScriptedTrainDouble(script, store)
    # WHEN the driver runs it as a chain
    recs, results = _run(cfg, target, run_chain)
    # THEN every leg has the same request and its own record, and the chain finished
    assert len({json.dumps(r, sort_keys=True) for r in target.requests}) == 1
    assert [r.leg for r in recs] == [0, 1, 2]
    assert [r.ok for r in recs] == [True, False, True]
    assert results[0]["version"] == "v1"
    lines = (cfg.out / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["leg"] for line in lines] == [0, 1, 2]
    summary = training_summary(recs, results)
    assert summary["legs"] == 3 and summary["cost_usd"] == pytest.approx(0.03)
    # the function's own progress entries: time and cost to accuracy are the report's
    assert summary["progress"] == progress and "epochs_to_target" not in summary
    batch = next(driver.plan(cfg, "local-faas"))
    # a reply naming any other prefix (here: every model bundle) makes the driver delete nothing
    store.put_bytes("models/m/v1/model.tflite", b"x")
    clean_scratch(target, batch, [{**results[0], "scratch": "models"}])
    assert store.exists(f"{prefix}/checkpoint.npz") and store.exists("models/m/v1/model.tflite")
    # the prefix the driver gave the chain is cleaned up
    clean_scratch(target, batch, results)
    assert not store.exists(f"{prefix}/checkpoint.npz")


def test_the_driver_stops_a_chain_on_a_bad_request(tmp_path: Path) -> None:
    target = ScriptedTrainDouble([error_response(INVALID_REQUEST, "params.epochs")])
    recs, results = _run(_cfg(tmp_path), target, run_chain)
    assert len(recs) == 1 and results == []


def test_the_driver_runs_rounds_of_workers_then_a_combine(tmp_path: Path) -> None:
    target = ScriptedTrainDouble([])
    cfg = _cfg(tmp_path, train_workers=(3,))
    ticks: list[int] = []
    recs, results = _run(cfg, target, run_rounds, ticks.append)
    assert sum(ticks) == 3 * (3 + 1) == driver.count_invocations(cfg, lambda t: True)
    roles = [(r.round, r.role) for r in recs]
    for rnd in range(3):
        assert roles.count((rnd, "worker")) == 3 and roles.count((rnd, "combine")) == 1
    # each round's combine is sent only after all its workers
    order = [(r["params"]["round"], "worker" in r["params"]) for r in target.requests]
    for rnd in range(3):
        idx = [i for i, o in enumerate(order) if o[0] == rnd]
        assert order[idx[-1]] == (rnd, False)
    assert results[0]["version"] == "v1"
    summary = training_summary(recs, results)
    assert summary["legs"] == 3  # the combine steps
    assert [p["epoch"] for p in summary["progress"]] == [1, 2, 3]


class NoteWritingDouble(Target):
    """Test double: one train invocation that writes its progress note epoch by epoch.

    After each note it waits (bounded) until the driver's bar has moved to that epoch, so the
    test shows the bar moves *during* the invocation, with no wall-clock assumption.
    """

    name = "local-faas"

    def __init__(self, store: LocalStore, seen: list[int], moved: threading.Condition) -> None:
        super().__init__(TargetSettings())
        self.store, self.seen, self.moved = store, seen, moved

    def scratch_store(self) -> LocalStore:
        return self.store

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        key = ck.progress_key(request["params"]["model"], request["params"]["chain"])
        for epoch in (1, 2):
            self.store.put_bytes(key, json.dumps({"epoch": epoch, "epochs": 3}).encode())
            with self.moved:
                assert self.moved.wait_for(lambda e=epoch: sum(self.seen) >= e, timeout=30)
        return Outcome(response=_ok({"status": "done", "epoch": 3, "version": "v"}), cold=False)


def test_the_bar_moves_per_epoch_while_a_leg_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chained, "EPOCH_POLL_S", 0.01)
    seen: list[int] = []
    moved = threading.Condition()

    def progress(n: int) -> None:
        with moved:
            seen.append(n)
            moved.notify_all()

    target = NoteWritingDouble(LocalStore(tmp_path / "store"), seen, moved)
    cfg = _cfg(tmp_path)
    batch = next(driver.plan(cfg, "local-faas"))
    cfg.out.mkdir(parents=True)
    writer = RecordWriter(cfg.out / "records.jsonl")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        recs, _ = run_chain(
            RunContext(cfg, target, writer, pool, threading.Event(), None, progress), batch
        )
    writer.close()
    assert recs[0].ok
    assert sum(seen) == 3  # epochs 1 and 2 while running, 3 when it returned


def test_the_leg_bound_follows_the_epochs_a_leg_reports() -> None:
    # GIVEN a driver that did not know the epoch count (bound 4) and a 15-epoch training
    s = chain.ChainState()
    steps = [
        chain.next_step(
            s, True, {"status": "continue", "epoch": e, "epochs": 15}, None, leg_bound=4
        )
        for e in range(1, 16)
    ]
    # THEN every one-epoch leg goes on, up to the bound the training's own count gives
    assert steps[:15] == [chain.Step.AGAIN] * 15
    assert chain.max_legs(15) == 18
    s2 = chain.ChainState()
    for _ in range(4):
        last = chain.next_step(
            s2, True, {"status": "continue", "epoch": s2.epoch + 1}, None, leg_bound=4
        )
    assert last is chain.Step.FAIL and "bound of 4 legs" in s2.why


def test_a_chain_runs_at_its_batch_memory_size(tmp_path: Path) -> None:
    # GIVEN a training batch of a memory sweep (1024 MB)
    from dataclasses import replace

    sizes: list[tuple[str, int]] = []

    class SizedDouble(ScriptedTrainDouble):
        """Test double: records the memory the driver sets before invoking."""

        def set_memory(self, workload: str, memory_mb: int) -> None:
            sizes.append((workload, memory_mb))

    done = _ok({"status": "done", "epoch": 3, "version": "v1", "progress": []})
    target = SizedDouble([done])
    cfg = _cfg(tmp_path)
    batch = replace(next(driver.plan(cfg, "local-faas")), memory_mb=1024)
    cfg.out.mkdir(parents=True)
    writer = RecordWriter(cfg.out / "records.jsonl")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        recs, _ = run_chain(RunContext(cfg, target, writer, pool, threading.Event()), batch)
    writer.close()
    # THEN the function was set to that size first, and the leg's record says so
    assert sizes == [("train", 1024)]
    assert recs[0].ok and recs[0].outcome.memory_mb == 1024


def test_a_chain_counts_its_epochs_on_the_bar_and_one_record_in_the_plan(tmp_path: Path) -> None:
    # GIVEN one chained 3-epoch training and one 2-worker data-parallel one (3 rounds)
    cfg = _cfg(tmp_path, train_workers=(1, 2))
    yes = lambda _: True  # noqa: E731
    # THEN the bar of epochs moves per epoch of the chain; a complete run leaves at least one
    # leg's record for it (so a finished run is never called incomplete for its legs)
    assert driver.count_epochs(cfg) == 3
    assert driver.count_invocations(cfg, yes) == 1 + 3 * 3


class _BrokenRemoteStore(LocalStore):
    """Test double: a remote store whose reads fail with its client's own error (as botocore
    raises on expired credentials), not with "not found"."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0

    def get_bytes(self, key: str) -> bytes:
        self.reads += 1
        raise RuntimeError("ExpiredToken: the security token included in the request expired")


class _SlowLegDouble(Target):
    """Test double: one train invocation that returns once the driver's poller gave up."""

    name = "lambda"

    def __init__(self, store: _BrokenRemoteStore, gave_up: threading.Event) -> None:
        super().__init__(TargetSettings())
        self.store, self.gave_up = store, gave_up

    def scratch_store(self) -> LocalStore:
        return self.store

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        assert self.gave_up.wait(timeout=30)
        return Outcome(response=_ok({"status": "done", "epoch": 3, "version": "v"}), cold=False)


def test_a_failing_remote_store_ends_progress_polling_once_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chained, "EPOCH_POLL_S", 0.01)
    gave_up = threading.Event()
    store = _BrokenRemoteStore(tmp_path / "store")

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "progress notes unreadable" in record.getMessage():
                gave_up.set()

    handler = _Handler()
    logging.getLogger("serverless_hpc.driver").addHandler(handler)
    try:
        target = _SlowLegDouble(store, gave_up)
        cfg = _cfg(tmp_path)
        batch = next(driver.plan(cfg, "local-faas"))
        cfg.out.mkdir(parents=True)
        writer = RecordWriter(cfg.out / "records.jsonl")
        from concurrent.futures import ThreadPoolExecutor

        with caplog.at_level("WARNING"), ThreadPoolExecutor(1) as pool:
            ctx = RunContext(cfg, target, writer, pool, threading.Event(), None, lambda n: None)
            recs, _ = run_chain(ctx, batch)
        writer.close()
    finally:
        logging.getLogger("serverless_hpc.driver").removeHandler(handler)
    # THEN the leg still finished, the poller read once and stopped, and said why once
    assert recs[0].ok
    assert store.reads == 1
    said = [r.getMessage() for r in caplog.records if "progress notes unreadable" in r.getMessage()]
    assert len(said) == 1 and "ExpiredToken" in said[0]


def test_rounds_per_epoch_multiply_the_rounds_and_split_each_epochs_steps() -> None:
    from serverless_hpc.workloads.train.data_parallel import worker_steps

    assert chain.rounds({"epochs": 3}) == 3
    assert chain.rounds({"epochs": 3, "syncs_per_epoch": 4}) == 12
    four = {"workers": 4, "round": 0, "chain": "r/c", "epochs": 3}
    p1 = TrainParams.model_validate(four)
    p4 = TrainParams.model_validate({**four, "syncs_per_epoch": 4, "round": 11})
    assert p4.rounds == 12
    # an epoch's steps are about the same however many rounds it is split into
    assert worker_steps(p4, 60_000) == pytest.approx(worker_steps(p1, 60_000), abs=4)
    # the sync count is part of what a resumed training must keep; absent at 1, as before
    assert p4.fingerprint()["syncs_per_epoch"] == 4 and "syncs_per_epoch" not in p1.fingerprint()
    with pytest.raises(ValueError, match="past the last round"):
        TrainParams.model_validate({**four, "syncs_per_epoch": 4, "round": 12})


def test_the_plan_counts_every_round_of_every_epoch(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, train_workers=(4,), params={"train": {"epochs": 3, "syncs_per_epoch": 2}})
    # 3 epochs x 2 rounds x (4 workers + 1 combine)
    assert driver.count_invocations(cfg, lambda _: True) == 3 * 2 * 5


def test_data_parallel_workers_scale_the_learning_rate_by_the_root_of_their_count() -> None:
    from serverless_hpc.workloads.train.params import learning_rate_factor

    assert learning_rate_factor(TrainParams.model_validate({})) == 1.0
    dp = {"round": 0, "chain": "r/c"}
    assert learning_rate_factor(TrainParams.model_validate({**dp, "workers": 4})) == 2.0
    two = learning_rate_factor(TrainParams.model_validate({**dp, "workers": 2}))
    assert two == pytest.approx(2**0.5)


def test_train_on_keeps_the_training_to_the_targets_it_names(tmp_path: Path) -> None:
    cfg = driver.BenchConfig(
        out=tmp_path / "run",
        targets=("local-faas", "standalone"),
        workloads=("train", "dataproc"),
        params={"train": {"epochs": 3}},
        shards=(1,),
        repeats=1,
        modes=("natural",),
        train_on=("local-faas",),
    )
    planned = {t: [b.workload for b in driver.plan(cfg, t)] for t in cfg.targets}
    assert planned == {"local-faas": ["train", "dataproc"], "standalone": ["dataproc"]}
    # the bars count the one training (its 3 epochs apart) and one dataproc per target
    assert driver.count_invocations(cfg, lambda _: True) == 1 + 1 + 1
    assert driver.count_epochs(cfg) == 3
    with pytest.raises(driver.BenchError, match="--train-on: lambda not in --targets"):
        driver.BenchConfig(out=tmp_path, targets=("local-faas",), train_on=("lambda",))
    with pytest.raises(driver.BenchError, match="training targets first"):
        driver.BenchConfig(
            out=tmp_path, targets=("local-faas", "standalone"), train_on=("standalone",)
        )
