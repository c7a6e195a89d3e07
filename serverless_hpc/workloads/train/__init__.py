"""``train``: a small CNN on the Fashion-MNIST training set, exported to LiteRT.

One invocation per batch (not fanned out), or a chain of them: it checkpoints after every
epoch and stops in time to be resumed (``resumable``), and it can train data-parallel over
several functions with model averaging (``data_parallel``). It writes a model bundle to the
store, so it runs before the workloads that read one, and the driver pins their requests to
the version it wrote. Test accuracy is measured on the held-out test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from serverless_hpc.workloads.classify import MODEL
from serverless_hpc.workloads.spec import (
    MODEL_NAME,
    Image,
    Option,
    Panel,
    RoundPlan,
    StoreAccess,
    Training,
    WorkloadSpec,
)

#: Training epochs by default (the README's accuracy figure is for these).
DEFAULT_EPOCHS = 15


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The trained model's version and its test accuracy (from the chain's final result)."""
    if not results:
        return {}
    return {
        "test_accuracy": results[0].get("test_accuracy"),
        "model_version": results[0]["version"],
    }


def progress_note(params: Mapping[str, Any]) -> str | None:
    """Where a chained training notes its epochs (see ``checkpoint.progress_key``)."""
    chain, model = params.get("chain"), params.get("model", MODEL)
    if not isinstance(chain, str) or not isinstance(model, str):
        return None
    from serverless_hpc.workloads.train.checkpoint import progress_key

    return progress_key(model, chain)


def _rounds(params: Mapping[str, Any], workers: int) -> int:
    """Data-parallel over ``workers`` > 1: ``epochs`` x ``syncs_per_epoch`` rounds; one
    worker trains as a resumable chain instead (0: not in rounds)."""
    from serverless_hpc import chain

    return chain.rounds(params) if workers > 1 else 0


def _round_requests(
    params: Mapping[str, Any], workers: int, rnd: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from serverless_hpc import chain

    return chain.round_params(params, workers, rnd)


SPEC = WorkloadSpec(
    name=__name__.rpartition(".")[2],
    summary="trains a small CNN on the 60k training images; exports LiteRT after a parity check",
    function_module=f"{__name__}.function",
    image=Image.TRAIN,
    store=StoreAccess.WRITE_MODELS,
    model=MODEL,
    memory_mb=4096,
    # TensorFlow alone is ~540 MB resident, and the 60k training set is held in memory.
    min_memory_mb=2048,
    timeout_s=900.0,
    order=10,
    long_running=True,
    resumable=True,
    data_parallel=True,
    progress_note=progress_note,
    # epochs explicit in every planned request: the driver bounds a chain's legs by it
    plan_params={"model": MODEL, "epochs": DEFAULT_EPOCHS},
    options=(
        Option("epochs", int, "training epochs", 1, 200, flag="train_epochs"),
        Option(
            "train_limit",
            int,
            "train on the first N training images only (quick runs)",
            100,
            60_000,
            nullable=True,
            flag="train_limit",
        ),
        Option("batch_size", int, "minibatch size", 1, 8192),
        Option("learning_rate", float, "Adam's learning rate", 1e-9, 1.0),
        Option("seed", int, "seed of the weights and the shuffles", 0, 2**31 - 1),
        Option("augment", bool, "random flips and shifts of the training images"),
        Option("model", str, "model bundle to write", pattern=MODEL_NAME),
        Option("eval_each_epoch", bool, "test accuracy after every epoch (the curve)"),
        Option(
            "syncs_per_epoch", int, "model averagings per epoch (data-parallel training)", 1, 64
        ),
    ),
    training=Training(
        epochs_param="epochs",
        accuracy_key="test_accuracy",
        progress_key="progress",
        entry_fields=("train_loss",),
    ),
    accuracy_key="test_accuracy",
    splits=lambda params: ("train", "test"),
    combine=combine,
    panels=(Panel.ACCURACY, Panel.BREAKDOWN),
    rounds=RoundPlan(rounds=_rounds, requests=_round_requests),
)
