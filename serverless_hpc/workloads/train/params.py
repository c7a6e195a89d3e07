"""``train``'s parameters: one request's settings, checked, and what a data-parallel worker
derives from them (its share of the batch, its learning-rate factor)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from serverless_hpc.workloads.base import Params
from serverless_hpc.workloads.train import DEFAULT_EPOCHS, SPEC


class TrainParams(Params):
    """Training settings; the defaults are the ones the README's accuracy figure comes from.

    ``chain`` turns on checkpoints (see :mod:`.checkpoint` for the keys): after every epoch
    the state is saved, a request with the same ``chain`` resumes from it, and the training
    returns ``{"status": "continue"}`` before an epoch that would not fit in the time the
    platform leaves it. ``workers`` > 1 is one step of a data-parallel training over
    ``workers`` functions: with ``worker`` set, that worker's part of round ``round``; without
    it, the round's combine step (average, evaluate, and after the last round export).
    A data-parallel training runs ``syncs_per_epoch`` rounds per epoch: in each, every worker
    trains on its slice of its shard (a worker's shard is its 1/``workers`` of the training
    set, in a fresh order each epoch), then the combine step averages them; the test
    accuracy is taken at the end of each epoch. ``batch_size`` is the global batch: each
    worker steps on ``batch_size / workers`` images (see :func:`worker_batch`).
    """

    epochs: int = Field(default=DEFAULT_EPOCHS, ge=1, le=200)
    batch_size: int = Field(default=128, ge=1, le=8192)
    learning_rate: float = Field(default=1e-3, gt=0, le=1)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    train_limit: int | None = Field(default=None, ge=100, le=60000)
    augment: bool = True
    model: str = SPEC.model or ""
    chain: str | None = Field(default=None, max_length=200)
    #: Test accuracy after every epoch (for the time-to-accuracy curve, never used to decide).
    eval_each_epoch: bool = True
    workers: int = Field(default=1, ge=1, le=64)
    #: Data-parallel: rounds per epoch, each one on its slice of every worker's shard.
    syncs_per_epoch: int = Field(default=1, ge=1, le=64)
    worker: int | None = Field(default=None, ge=0)
    round: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _data_parallel_fields(self) -> TrainParams:
        if self.workers == 1:
            if self.worker is not None or self.round is not None:
                raise ValueError("worker and round are for data-parallel training (workers > 1)")
            return self  # syncs_per_epoch has no meaning here: one worker, nothing to average
        if self.chain is None or self.round is None:
            raise ValueError("data-parallel training (workers > 1) needs chain and round")
        if self.round >= self.rounds:
            raise ValueError(f"round {self.round} is past the last round ({self.rounds - 1})")
        if self.worker is not None and self.worker >= self.workers:
            raise ValueError(f"worker {self.worker} is not below workers ({self.workers})")
        return self

    @property
    def rounds(self) -> int:
        """A data-parallel training's rounds: ``syncs_per_epoch`` per epoch."""
        return self.epochs * self.syncs_per_epoch

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between the legs of one chain (a resume checks it)."""
        keys = ("epochs", "batch_size", "learning_rate", "seed", "train_limit", "augment")
        out = {k: getattr(self, k) for k in keys} | {"workers": self.workers}
        if self.workers > 1 and self.syncs_per_epoch > 1:  # absent at 1, as before it existed
            out["syncs_per_epoch"] = self.syncs_per_epoch
        return out


def worker_batch(p: TrainParams) -> int:
    """A worker's batch: its share of the global ``batch_size`` (at least 1).

    Model averaging after a round of N workers that each stepped on B/N images moves the
    model about as far as a single training's round of B-image steps: as many steps per
    round, each averaged over B images in all. With B images per worker instead, each
    worker takes N times fewer steps per round and the average lags a single training by
    about that much (measured: 5 points of test accuracy after 3 epochs with 4 workers).
    """
    return max(1, round(p.batch_size / p.workers))


def learning_rate_factor(p: TrainParams) -> float:
    """What a data-parallel worker multiplies ``learning_rate`` by: the square root of the
    worker count (1 for a single training).

    Each worker's Adam step is normalised by its own gradients' second moment, which the
    smaller worker batch makes noisier, so the averaged step is shorter than a single
    training's. Measured here after 3 epochs with 4 workers: 0.8574 test accuracy at the
    single training's rate, 0.8664 at twice it, against 0.8743 for one worker; averaging
    four times per epoch instead of once did not help (0.8564).
    """
    return math.sqrt(p.workers)
