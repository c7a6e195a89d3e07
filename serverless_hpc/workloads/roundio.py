"""What every workload that runs in rounds shares on the function side: timed store I/O.

A round's function reads what the previous rounds wrote in the store and writes what the
next ones read, under its job's scratch prefix (:func:`~serverless_hpc.workloads.spec.
scratch_prefix`). :class:`RoundIO` does that and measures it, so every round workload
reports the same timings (:meth:`RoundIO.timings`): ``store_read_ms``, ``store_write_ms``,
``bytes_read``, ``bytes_written`` beside the ``compute_ms`` of :class:`~serverless_hpc.
workloads.base.Output`. Arrays travel as ``.npy`` bytes (a small header, then the raw
little-endian values; never pickled), so a reader gets the exact values a writer stored.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from serverless_hpc.contract import InvalidRequest, NotFound
from serverless_hpc.store import Store, open_store
from serverless_hpc.store_base import KEY_PART_RE
from serverless_hpc.workloads.base import Context, Output, Params
from serverless_hpc.workloads.spec import WorkloadSpec, scratch_prefix

if TYPE_CHECKING:
    import numpy as np

#: The largest worker count a round plan gives (the driver's fan-out bound).
MAX_WORKERS = 1000


class RoundParams(Params):
    """The fields the driver's round plan adds to every request of a job in rounds."""

    #: The job's id, given by the driver (its scratch objects live under it).
    job: str = Field(default="local", min_length=1, max_length=200)
    round: int = Field(default=0, ge=0)
    worker: int | None = Field(default=None, ge=0)
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)


def check_job(workload: str, job: str) -> str:
    """The job's scratch prefix; :class:`InvalidRequest` naming ``job`` if it cannot be a
    store key (every '/'-separated part a plain name)."""
    parts = job.split("/")
    if any(p in ("", ".", "..") or not KEY_PART_RE.match(p) for p in parts):
        raise InvalidRequest(f"params.job: not a valid store key part: {job!r}")
    return scratch_prefix(workload, job)


def array_bytes(values: np.ndarray) -> bytes:
    """``values`` as ``.npy`` bytes (no pickling)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    return buf.getvalue()


def bytes_array(data: bytes, what: str) -> np.ndarray:
    """The array :func:`array_bytes` wrote; :class:`InvalidRequest` naming ``what`` if the
    bytes are not an ``.npy`` array."""
    import numpy as np

    try:
        out: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidRequest(f"{what}: not an array ({exc})") from None
    return out


@dataclass(slots=True)
class RoundIO:
    """A job's scratch objects in the store, with the time and bytes of every access."""

    store: Store
    prefix: str
    read_s: float = 0.0
    write_s: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    reads: int = 0
    writes: int = 0

    @classmethod
    def open(cls, ctx: Context, workload: str, job: str) -> RoundIO:
        """The job's scratch area in the store the context names."""
        prefix = check_job(workload, job)
        return cls(open_store(ctx.store_uri), prefix)

    def key(self, name: str) -> str:
        """The store key of scratch object ``name`` of this job."""
        return f"{self.prefix}/{name}"

    def get(self, name: str) -> bytes:
        """Read scratch object ``name``; :class:`NotFound` naming it when absent."""
        t0 = time.perf_counter()
        try:
            data = self.store.get_bytes(self.key(name))
        except NotFound:
            raise NotFound(
                f"{self.store.uri}: no scratch object {self.key(name)!r} (did an earlier round "
                "of this job fail, or run under another job id?)"
            ) from None
        self.read_s += time.perf_counter() - t0
        self.bytes_read += len(data)
        self.reads += 1
        return data

    def put(self, name: str, data: bytes) -> None:
        """Write scratch object ``name``."""
        t0 = time.perf_counter()
        self.store.put_bytes(self.key(name), data)
        self.write_s += time.perf_counter() - t0
        self.bytes_written += len(data)
        self.writes += 1

    def get_array(self, name: str) -> np.ndarray:
        """Read an array written with :meth:`put_array`."""
        data = self.get(name)
        t0 = time.perf_counter()
        out = bytes_array(data, self.key(name))
        self.read_s += time.perf_counter() - t0  # decoding is part of reading it
        return out

    def put_array(self, name: str, values: np.ndarray) -> None:
        """Write an array as ``.npy`` bytes."""
        t0 = time.perf_counter()
        data = array_bytes(values)
        self.write_s += time.perf_counter() - t0  # encoding is part of writing it
        self.put(name, data)

    def timings(self) -> dict[str, float]:
        """The store I/O this invocation did, for its response's ``timings``."""
        return {
            "store_read_ms": self.read_s * 1e3,
            "store_write_ms": self.write_s * 1e3,
            "bytes_read": float(self.bytes_read),
            "bytes_written": float(self.bytes_written),
            "store_reads": float(self.reads),
            "store_writes": float(self.writes),
        }


@dataclass(slots=True)
class Call:
    """One invocation of a job run by :func:`run_inline`."""

    round: int
    role: str
    params: dict[str, Any]
    output: Output
    wall_s: float


def run_inline(
    spec: WorkloadSpec, params: Mapping[str, Any], workers: int, ctx: Context
) -> list[Call]:
    """Run a round workload's whole job by calling its function directly, round by round,
    in this process (for tests and the benchmarks under ``benchmarks/``: no platform, so
    every figure is the function's own work and store I/O).

    Follows the driver's rules: a combine result with ``"status": "continue"`` continues,
    any other ends the job. A failure raises what the function raised.
    """
    import importlib

    if spec.rounds is None:
        raise ValueError(f"{spec.name} does not run in rounds")
    module = importlib.import_module(spec.function_module)
    merged = {**spec.plan_params, **params}
    calls: list[Call] = []
    for rnd in range(spec.rounds.rounds(merged, workers)):
        worker_params, combine = spec.rounds.requests(merged, workers, rnd)
        for role, p in [(str(w.get("phase") or "worker"), w) for w in worker_params] + (
            [("combine", combine)] if combine is not None else []
        ):
            t0 = time.perf_counter()
            out = module.run(dict(p), ctx)
            calls.append(Call(rnd, role, dict(p), out, time.perf_counter() - t0))
        if combine is not None and calls[-1].output.result.get("status") != "continue":
            break
    return calls


#: The round figures a result repeats under ``round_io`` (the record keeps a function's
#: result, not its whole ``timings``). The request counts let the report model the same
#: traffic on a store with per-request latency and per-prefix request rates.
ROUND_IO_KEYS = (
    "compute_ms",
    "store_read_ms",
    "store_write_ms",
    "bytes_read",
    "bytes_written",
    "store_reads",
    "store_writes",
)


def with_round_io(out: Output) -> Output:
    """``out`` with its compute time and store I/O also in ``result["round_io"]``."""
    figures = {"compute_ms": out.compute_ms, **out.extra_timings}
    out.result["round_io"] = {k: float(figures[k]) for k in ROUND_IO_KEYS if k in figures}
    return out
