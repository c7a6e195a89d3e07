"""``train`` data-parallel: one worker's round on its shard, from the round's start, and
the round's combine step (average the workers, evaluate at an epoch's end, and after the
last round export). The rounds exchange checkpoints under the chain's scratch prefix (see
:mod:`.checkpoint`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from serverless_hpc.contract import NotFound
from serverless_hpc.store import open_store
from serverless_hpc.workloads.base import Context, Output
from serverless_hpc.workloads.spec import split_ranges
from serverless_hpc.workloads.train import checkpoint as ck
from serverless_hpc.workloads.train.export import finish
from serverless_hpc.workloads.train.model import (
    accuracy_of,
    epoch_arrays,
    fit,
    fresh_model,
    get_state,
    load_checkpoint,
    load_data,
    set_state,
    steps,
)
from serverless_hpc.workloads.train.params import TrainParams, worker_batch


def worker_steps(p: TrainParams, n: int) -> int:
    """Optimizer steps per epoch on the largest shard, over all its rounds (the same
    schedule for every worker)."""
    shard = split_ranges(n, p.workers)[0].size
    return sum(steps(r.size, worker_batch(p)) for r in split_ranges(shard, p.syncs_per_epoch))


def run_worker(p: TrainParams, ctx: Context) -> Output:
    """Train one round on this worker's shard from the round's start; store the result."""
    assert p.chain is not None and p.round is not None and p.worker is not None
    t0 = time.perf_counter()
    xtr, ytr, _, _ = load_data(p, ctx)
    shard = split_ranges(len(xtr), p.workers)[p.worker]
    x, y = xtr[shard.start : shard.end], ytr[shard.start : shard.end]
    store = open_store(ctx.store_uri)
    model = fresh_model(p, worker_steps(p, len(xtr)))  # round 0: the same seed everywhere
    if p.round > 0:
        start_key = ck.round_start_key(p.model, p.chain, p.round)
        ckpt = load_checkpoint(store, start_key, p)
        if ckpt is None:
            raise NotFound(f"{store.uri}: no {start_key!r}: round {p.round - 1} was not combined")
        set_state(model, ckpt.model, ckpt.optimizer)
    t1 = time.perf_counter()
    # Each worker and epoch has its own data order, drawn afresh by each of the epoch's
    # rounds (no state carries over between rounds); a round trains on its slice of it.
    epoch, part = divmod(p.round, p.syncs_per_epoch)
    rng = np.random.default_rng([p.seed, epoch, p.worker])
    xe, ye = epoch_arrays(x, y, rng, p.augment)
    piece = split_ranges(len(xe), p.syncs_per_epoch)[part]
    entry = fit(model, xe[piece.start : piece.end], ye[piece.start : piece.end], worker_batch(p))
    t2 = time.perf_counter()
    weights, opt = get_state(model)
    key = ck.worker_key(p.model, p.chain, p.round, p.worker)
    ckpt = ck.Checkpoint(weights, opt, p.round + 1, None, p.fingerprint(), [entry])
    store.put_bytes(key, ckpt.to_bytes())
    t3 = time.perf_counter()
    return Output(
        result={
            "status": "done",
            "round": p.round,
            "worker": p.worker,
            "items": piece.size,
            "checkpoint": key,
            **entry,
        },
        load_ms=(t1 - t0) * 1e3,
        compute_ms=(t3 - t1) * 1e3,
        extra_timings={"fit_ms": (t2 - t1) * 1e3, "checkpoint_ms": (t3 - t2) * 1e3},
    )


def run_combine(p: TrainParams, ctx: Context) -> Output:
    """Average the round's workers, evaluate the average; after the last round, export it."""
    assert p.chain is not None and p.round is not None
    t0 = time.perf_counter()
    xtr, _, xte, yte = load_data(p, ctx)
    store = open_store(ctx.store_uri)
    workers = []
    for i in range(p.workers):
        ckpt = load_checkpoint(store, ck.worker_key(p.model, p.chain, p.round, i), p)
        if ckpt is None:
            raise NotFound(f"round {p.round}: worker {i} stored no weights in {store.uri}")
        workers.append(ckpt)
    progress: list[dict[str, Any]] = []
    if p.round > 0:
        start = load_checkpoint(store, ck.round_start_key(p.model, p.chain, p.round), p)
        progress = start.progress if start is not None else []
    t1 = time.perf_counter()
    weights = ck.average([w.model for w in workers])
    opt = ck.average([w.optimizer for w in workers])
    model = fresh_model(p, worker_steps(p, len(xtr)))
    set_state(model, weights, opt)
    # Test accuracy at the end of each epoch (every ``syncs_per_epoch`` rounds), for the
    # time-to-accuracy curve only.
    epochs_done, mid_epoch = divmod(p.round + 1, p.syncs_per_epoch)
    accuracy = None
    if not mid_epoch:
        losses = [w.progress[0]["train_loss"] for w in workers if w.progress]
        entry: dict[str, Any] = {
            "epoch": epochs_done,
            "round": p.round,
            "train_loss": float(np.mean(losses)) if losses else None,
            "t_unix": time.time(),
        }
        te = time.perf_counter()
        accuracy = entry["test_accuracy"] = accuracy_of(model, xte, yte)[0]
        entry["eval_s"] = time.perf_counter() - te
        progress = [*progress, entry]
    if p.round + 1 < p.rounds:
        key = ck.round_start_key(p.model, p.chain, p.round + 1)
        nxt = ck.Checkpoint(weights, opt, p.round + 1, None, p.fingerprint(), progress)
        store.put_bytes(key, nxt.to_bytes())
        return Output(
            result={
                "status": "continue",
                "round": p.round,
                "rounds": p.rounds,
                "epoch": epochs_done,
                "epochs": p.epochs,
                "checkpoint": key,
                "test_accuracy": accuracy,
                "progress": progress,
            },
            load_ms=(t1 - t0) * 1e3,
            compute_ms=(time.perf_counter() - t1) * 1e3,
        )
    result, timings = finish(model, p, xte, yte, store, len(xtr), progress)
    return Output(
        result={
            **result,
            "status": "done",
            "round": p.round,
            "epoch": p.epochs,
            "scratch": ck.chain_prefix(p.model, p.chain),
            "progress": progress,
        },
        load_ms=(t1 - t0) * 1e3,
        compute_ms=(time.perf_counter() - t1) * 1e3,
        extra_timings=timings,
    )
