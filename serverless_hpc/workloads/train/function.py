"""``train``: a Keras CNN on the Fashion-MNIST training set, exported to LiteRT and checked.

This module is what runs inside a function: :func:`preload` and :func:`run`, and the single
training, resumable as a chain of legs. The rest of the package: :mod:`.params` (the request),
:mod:`.model` (the network, its state, its data and steps), :mod:`.export` (evaluation,
LiteRT export, parity check, bundle), :mod:`.data_parallel` (a data-parallel training's
rounds) and :mod:`.checkpoint` (the checkpoints and their keys).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np

from serverless_hpc.store import check_model_name, open_store
from serverless_hpc.workloads.base import Context, Output, parse_params
from serverless_hpc.workloads.train import checkpoint as ck
from serverless_hpc.workloads.train import data_parallel
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
from serverless_hpc.workloads.train.params import TrainParams

log = logging.getLogger(__name__)

#: TensorFlow's intra-op and inter-op thread pools, fixed. Kernels may split their work by
#: the pool size, and a split can decide the order of floating-point sums; fixed, the pools
#: cannot make the model follow the instance's CPUs (its memory size). The model then depends
#: on the seed, the parameters, TensorFlow's build and the CPU (README, "Measured here").
#: Two: what a default-sized instance has here; an instance with more vCPUs does not use
#: them for training.
TRAIN_THREADS = 2


#: A leg starts another epoch only if this multiple of the longest recent epoch, plus the
#: checkpoint and :data:`DEADLINE_MARGIN_S`, fits in the time left.
EPOCH_SAFETY = 1.25
RECENT_EPOCHS = 2
DEADLINE_MARGIN_S = 3.0
#: Time kept for evaluating, exporting, checking parity and saving the bundle after the
#: last epoch (about 5 s here with TensorFlow warm; generous on purpose: running short
#: costs a leg, running over costs a kill).
FINISH_RESERVE_S = 20.0


def preload() -> None:
    """Import TensorFlow now (seconds, hundreds of MB), so it counts as import time, and fix
    its thread pools (:data:`TRAIN_THREADS`) before it runs anything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    threads = tf.config.threading
    if (
        threads.get_intra_op_parallelism_threads() != TRAIN_THREADS
        or threads.get_inter_op_parallelism_threads() != TRAIN_THREADS
    ):
        # A RuntimeError here means TensorFlow ran before preload: the pools can no longer
        # be fixed, and the model would follow the machine's CPUs; it is not hidden.
        threads.set_intra_op_parallelism_threads(TRAIN_THREADS)
        threads.set_inter_op_parallelism_threads(TRAIN_THREADS)


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Train (or resume, or one data-parallel step), evaluate, export, check parity, store."""
    p = parse_params(TrainParams, raw)
    check_model_name(p.model)
    if p.chain is not None:
        ck.check_chain(p.chain)
    preload()
    if p.workers > 1:
        if p.worker is not None:
            return data_parallel.run_worker(p, ctx)
        return data_parallel.run_combine(p, ctx)
    return _run_single(p, ctx)


def _fit_epoch(
    model: Any, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, p: TrainParams
) -> dict[str, float]:
    return fit(model, *epoch_arrays(x, y, rng, p.augment), p.batch_size)


def fits(remaining_s: float | None, progress: list[dict[str, Any]], checkpoint_s: float) -> bool:
    """Whether another epoch fits in ``remaining_s`` (None: no deadline, always).

    The estimate is the longer of the last :data:`RECENT_EPOCHS` epochs (training plus its
    evaluation) times :data:`EPOCH_SAFETY`, plus the last checkpoint's save time and
    :data:`DEADLINE_MARGIN_S`. Recent, not all: one epoch slowed down by a busy machine
    would otherwise hold every later leg to one epoch.
    """
    if remaining_s is None:
        return True
    recent = progress[-RECENT_EPOCHS:]
    longest = max((e["epoch_s"] + e.get("eval_s", 0.0) for e in recent), default=0.0)
    return remaining_s >= longest * EPOCH_SAFETY + checkpoint_s + DEADLINE_MARGIN_S


# -- one training, resumable ----------------------------------------------------------------


def _run_single(p: TrainParams, ctx: Context) -> Output:
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = load_data(p, ctx)
    store = open_store(ctx.store_uri)
    model = fresh_model(p, steps(len(xtr), p.batch_size))
    rng = np.random.default_rng(p.seed)
    key = ck.checkpoint_key(p.model, p.chain) if p.chain else None
    ckpt = load_checkpoint(store, key, p) if key else None
    progress: list[dict[str, Any]] = []
    start = 0
    if ckpt is not None:
        set_state(model, ckpt.model, ckpt.optimizer)
        if ckpt.rng_state is not None:
            rng.bit_generator.state = ckpt.rng_state
        start, progress = ckpt.epoch, ckpt.progress
        log.info("resuming chain %s after epoch %d", p.chain, start)
    t1 = time.perf_counter()
    checkpoint_s = 0.0
    for epoch in range(start, p.epochs):
        # Every leg trains at least one epoch, so a chain always moves on.
        if key and epoch > start and not fits(ctx.remaining_s(), progress, checkpoint_s):
            return _continue(p, key, epoch, progress, t0, t1, checkpoint_s)
        entry: dict[str, Any] = {"epoch": epoch + 1, **_fit_epoch(model, xtr, ytr, rng, p)}
        entry["t_unix"] = time.time()  # when the epoch's training ended (evaluation apart)
        if p.eval_each_epoch:
            te = time.perf_counter()
            entry["test_accuracy"] = accuracy_of(model, xte, yte)[0]
            entry["eval_s"] = time.perf_counter() - te
        progress.append(entry)
        if key:
            tc = time.perf_counter()
            weights, opt = get_state(model)
            state = dict(rng.bit_generator.state)
            ckpt = ck.Checkpoint(weights, opt, epoch + 1, state, p.fingerprint(), progress)
            store.put_bytes(key, ckpt.to_bytes())
            note = {"epoch": epoch + 1, "epochs": p.epochs}
            store.put_bytes(ck.progress_key(p.model, p.chain or ""), json.dumps(note).encode())
            checkpoint_s = time.perf_counter() - tc
    remaining = ctx.remaining_s()
    if key and remaining is not None and remaining < FINISH_RESERVE_S:
        return _continue(p, key, p.epochs, progress, t0, t1, checkpoint_s)
    t2 = time.perf_counter()
    result, timings = finish(model, p, xte, yte, store, len(xtr), progress)
    return Output(
        result={
            **result,
            "status": "done",
            "epoch": p.epochs,
            "progress": progress,
            "scratch": ck.chain_prefix(p.model, p.chain) if p.chain else None,
        },
        load_ms=(t1 - t0) * 1e3,
        compute_ms=(time.perf_counter() - t1) * 1e3,
        extra_timings={"fit_ms": (t2 - t1) * 1e3, "checkpoint_ms": checkpoint_s * 1e3, **timings},
    )


def _continue(
    p: TrainParams,
    key: str,
    epoch: int,
    progress: list[dict[str, Any]],
    t0: float,
    t1: float,
    checkpoint_s: float,
) -> Output:
    """The result that asks the caller to invoke again with the same parameters."""
    log.info("chain %s: stopping after epoch %d of %d to resume later", p.chain, epoch, p.epochs)
    return Output(
        result={
            "status": "continue",
            "checkpoint": key,
            "epoch": epoch,
            "epochs": p.epochs,
            "model": p.model,
            "progress": progress,
        },
        load_ms=(t1 - t0) * 1e3,
        compute_ms=(time.perf_counter() - t1) * 1e3,
        extra_timings={"checkpoint_ms": checkpoint_s * 1e3},
    )
