"""Training checkpoints in the model store, their keys, and synchronous model averaging.

numpy only (no TensorFlow), so the driver can name, read and clean up checkpoints too.

A checkpoint is one ``.npz`` object written with a single atomic put (a rename on the local
store, one ``PutObject`` on S3), so a reader sees the previous checkpoint or the new one,
never half of one. It holds every model variable (weights and the dropout layer's RNG
state), every optimizer variable (Adam's step counter and moments), and a JSON header: the
number of epochs done, the data-order RNG state to continue from, the parameters the
training was started with (a resume with other parameters is refused) and the progress so
far (per-epoch test accuracy and timings).

Keys, all under the model's prefix (which the ``train`` function may already write, so no
extra permission is needed on any platform)::

    models/<model>/checkpoints/<chain>/checkpoint.npz           a chain's latest checkpoint
    models/<model>/checkpoints/<chain>/progress.json            ``{"epoch", "epochs"}`` after it
    models/<model>/checkpoints/<chain>/round-<r>/start.npz      data-parallel: round r's start
    models/<model>/checkpoints/<chain>/round-<r>/worker-<i>.npz data-parallel: worker i's end

``<chain>`` is chosen by the driver as ``<run_id>/<target>-r<repeat>[-w<workers>]``, so two
chains (two targets, two repeats, two runs) never share a key. The chain's checkpoint is
overwritten after each epoch (only the latest is ever needed); the driver deletes the whole
``<chain>`` prefix once the chain has produced its model bundle, and keeps it when the chain
failed (it is what a retry would resume from).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from serverless_hpc.chain import scratch_prefix
from serverless_hpc.contract import InvalidRequest

#: A chain id: one or more key parts separated by '/'.
CHAIN_RE: Final = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+){0,3}$")
_HEADER: Final = "__header__"
FORMAT: Final = 1


def check_chain(chain: str) -> str:
    """Validate a chain id (it becomes part of object keys)."""
    dots = any(part in (".", "..") for part in chain.split("/"))
    if not CHAIN_RE.match(chain) or len(chain) > 200 or dots:
        raise InvalidRequest(
            f"params.chain: must be 1-4 parts of letters, digits, _.=- (not . or ..) "
            f"separated by '/' "
            f"(at most 200 characters), got {chain!r}"
        )
    return chain


def chain_prefix(model: str, chain: str) -> str:
    """Store prefix of everything one chain writes."""
    return scratch_prefix(model, check_chain(chain))


def checkpoint_key(model: str, chain: str) -> str:
    """Key of a chain's latest checkpoint."""
    return f"{chain_prefix(model, chain)}/checkpoint.npz"


def progress_key(model: str, chain: str) -> str:
    """Key of a chain's tiny progress note (epochs done), which the driver polls for its bar."""
    return f"{chain_prefix(model, chain)}/progress.json"


def round_start_key(model: str, chain: str, rnd: int) -> str:
    """Key of the weights every worker of data-parallel round ``rnd`` starts from."""
    return f"{chain_prefix(model, chain)}/round-{rnd}/start.npz"


def worker_key(model: str, chain: str, rnd: int, worker: int) -> str:
    """Key of worker ``worker``'s weights at the end of data-parallel round ``rnd``."""
    return f"{chain_prefix(model, chain)}/round-{rnd}/worker-{worker}.npz"


@dataclass(slots=True)
class Checkpoint:
    """A training's state after ``epoch`` epochs (see the module docstring)."""

    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    epoch: int
    rng_state: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    progress: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Serialise as an uncompressed ``.npz`` (compression costs time, saves little)."""
        header = {
            "format": FORMAT,
            "epoch": self.epoch,
            "rng_state": self.rng_state,
            "params": self.params,
            "progress": self.progress,
            "n_model": len(self.model),
            "n_optimizer": len(self.optimizer),
        }
        arrays: dict[str, np.ndarray] = {
            _HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        }
        arrays.update({f"m{i}": a for i, a in enumerate(self.model)})
        arrays.update({f"o{i}": a for i, a in enumerate(self.optimizer)})
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """The inverse of :meth:`to_bytes`; ``ValueError`` when ``data`` is not a checkpoint."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                header = json.loads(npz[_HEADER].tobytes().decode())
                if header.get("format") != FORMAT:
                    raise ValueError(f"checkpoint format {header.get('format')!r} != {FORMAT}")
                model = [npz[f"m{i}"] for i in range(int(header["n_model"]))]
                optimizer = [npz[f"o{i}"] for i in range(int(header["n_optimizer"]))]
        except (
            OSError,
            KeyError,
            zipfile.BadZipFile,
            json.JSONDecodeError,
            UnicodeDecodeError,
        ) as exc:
            raise ValueError(f"not a training checkpoint: {type(exc).__name__}: {exc}") from None
        return cls(
            model=model,
            optimizer=optimizer,
            epoch=int(header["epoch"]),
            rng_state=header.get("rng_state"),
            params=dict(header.get("params") or {}),
            progress=list(header.get("progress") or []),
        )


def average(states: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise average of several workers' variables (synchronous model averaging).

    Floating-point variables (weights, Adam's moments) are averaged in float64 and cast
    back to their dtype. Integer variables (the optimizer's step counter, RNG counters) are
    counters, not parameters: they take the largest value, so the learning-rate schedule
    never steps back. ``ValueError`` when the workers' variables do not line up.
    """
    if not states:
        raise ValueError("nothing to average")
    n = len(states[0])
    if any(len(s) != n for s in states):
        raise ValueError(f"workers have different variable counts: {[len(s) for s in states]}")
    out: list[np.ndarray] = []
    for i in range(n):
        parts = [np.asarray(s[i]) for s in states]
        shape, dtype = parts[0].shape, parts[0].dtype
        if any(p.shape != shape or p.dtype != dtype for p in parts):
            raise ValueError(f"variable {i}: shapes/dtypes differ across workers")
        stacked = np.stack(parts)
        if np.issubdtype(dtype, np.floating):
            out.append(stacked.mean(axis=0, dtype=np.float64).astype(dtype))
        else:
            out.append(stacked.max(axis=0))
    return out
