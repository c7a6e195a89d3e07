"""A model, not a measurement: a coupled job's store traffic on Lambda with S3 between its
rounds, and the fan-out where that traffic overtakes the job's compute.

A run measures, per round of a job, what its functions computed and what they moved through
the store: bytes read and written and the requests that moved them (the records' ``round_io``).
Those counts are properties of the job, not of the platform, so they carry over to S3; the
time they take there does not, and comes from the platform profile's ``store`` section
(typical published values, :class:`~serverless_hpc.report.profile.StoreProfile`):

* a function's reads take ``max(first-byte latency x its GETs, bytes read / bandwidth)``,
  its writes likewise with the PUT latency: one function's requests go one after another,
  and its bandwidth is its own;
* a round's requests all go to the job's one scratch prefix, which takes so many GETs and
  PUTs a second: where the round's functions together ask for more, the reads (writes) last
  as long as the prefix needs to serve them (the difference is the throttling);
* the functions of a part of a round share its traffic evenly; a part with one function (a
  combine step) runs after the others, so its store time adds to the round's.

To project to fan-outs the run did not measure, each part's totals are fitted as a power of
the fan-out over the fan-outs measured above 1 (a shuffle's requests grow as its square, a
stencil's about as the fan-out; a single function exchanges with nobody, so fan-out 1 is off
that curve and only used when nothing else was measured); from one fan-out the totals of
bytes are held and the requests grow with the fan-out (each function makes the requests it
made). Compute is the measured total
spread over the functions (``compute / fan-out`` per function), divided by the profile's
speed factor for a cloud vCPU. A combine step's compute is left out of the comparison (in
these jobs it is mostly the job's checks, e.g. a single-process recount; and it does not
shrink with the fan-out, so it would hide the crossover); its store time stays in. The
crossover is the smallest fan-out at which the modelled store time of a job's rounds
reaches their compute time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from serverless_hpc.report.profile import StoreProfile

#: The largest fan-out searched for a crossover (Lambda's default concurrency per Region).
MAX_FANOUT: Final = 1000

Bound = Literal["latency", "bandwidth", "prefix rate", "none"]


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a round (its workers, or its combine step) at one fan-out: totals over
    the part's functions, as the run measured them or as the model scales them."""

    round: int
    role: str
    functions: int
    compute_ms: float
    bytes_read: float
    bytes_written: float
    reads: float
    writes: float


@dataclass(frozen=True, slots=True)
class StoreTime:
    """A part's modelled store time on S3 per function, and what bounds it."""

    read_ms: float  #: reads, throttling included
    write_ms: float  #: writes, throttling included
    throttle_ms: float  #: how much of it the per-prefix rates added
    bound: Bound

    @property
    def total_ms(self) -> float:
        """Reads and writes, one after the other."""
        return self.read_ms + self.write_ms


def store_time(part: Part, store: StoreProfile) -> StoreTime:
    """The modelled store time of one of ``part``'s functions on S3 (its share of the part's
    traffic), with throttling where the part's requests exceed the prefix's rates."""
    n = max(part.functions, 1)
    bytes_per_ms = store.function_bandwidth_mb_s * 1e3  # MB/s = 1e6 B / 1e3 ms
    latency = (store.get_first_byte_ms * part.reads + store.put_ms * part.writes) / n
    bandwidth = (part.bytes_read + part.bytes_written) / n / bytes_per_ms
    read = max(store.get_first_byte_ms * part.reads, part.bytes_read / bytes_per_ms) / n
    write = max(store.put_ms * part.writes, part.bytes_written / bytes_per_ms) / n
    read_floor = part.reads / store.get_per_prefix_per_s * 1e3
    write_floor = part.writes / store.put_per_prefix_per_s * 1e3
    throttle = max(0.0, read_floor - read) + max(0.0, write_floor - write)
    bound: Bound
    if throttle > 0:
        bound = "prefix rate"
    elif latency == bandwidth == 0:
        bound = "none"
    else:
        bound = "latency" if latency >= bandwidth else "bandwidth"
    return StoreTime(max(read, read_floor), max(write, write_floor), throttle, bound)


def _power_fit(points: Sequence[tuple[int, float]], default_exponent: float) -> tuple[float, float]:
    """``(a, b)`` of ``q = a * f**b`` through the points (least squares in logs); from one
    fan-out, or values that are not all > 0, the last point with ``default_exponent``."""
    positive = [(f, q) for f, q in points if q > 0 and f > 0]
    fanouts = {f for f, _ in positive}
    if len(fanouts) >= 2 and len(positive) == len(points):
        xs = [math.log(f) for f, _ in positive]
        ys = [math.log(q) for _, q in positive]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        return math.exp(my - b * mx), b
    f0, q0 = max(points)
    return (q0 / f0**default_exponent if f0 > 0 else q0), default_exponent


@dataclass(frozen=True, slots=True)
class Scaling:
    """How one part's totals follow the fan-out (fitted on the measured fan-outs)."""

    round: int
    role: str
    fanned: bool  #: its functions are the fan-out (else a fixed count, e.g. one combine step)
    functions: int  #: the fixed count, when not fanned
    compute_ms: float  #: total compute at :attr:`anchor` (spread over the functions)
    anchor: int  #: the fan-out the compute was measured at (the largest measured)
    fits: Mapping[str, tuple[float, float]]  #: ``(a, b)`` per traffic figure

    def at(self, fanout: int) -> Part:
        """This part's totals at ``fanout`` (a model)."""

        def q(name: str) -> float:
            a, b = self.fits[name]
            return a * fanout**b

        return Part(
            round=self.round,
            role=self.role,
            functions=fanout if self.fanned else self.functions,
            compute_ms=self.compute_ms,
            bytes_read=q("bytes_read"),
            bytes_written=q("bytes_written"),
            reads=q("reads"),
            writes=q("writes"),
        )


def scalings(measured: Mapping[int, Sequence[Part]]) -> list[Scaling]:
    """Each part's scaling from its measured totals by fan-out (``measured``: fan-out ->
    the parts of a job's rounds at that fan-out, averaged over jobs)."""
    by_part: dict[tuple[int, str], dict[int, Part]] = {}
    for fanout, parts in measured.items():
        for p in parts:
            by_part.setdefault((p.round, p.role), {})[fanout] = p
    out = []
    for (rnd, role), seen in sorted(by_part.items()):
        anchor = max(seen)
        last = seen[anchor]
        fanned = last.functions == anchor and (anchor > 1 or role != "combine")
        on_curve = {f: p for f, p in seen.items() if f > 1} or seen
        fits = {
            name: _power_fit(
                [(f, float(getattr(p, name))) for f, p in sorted(on_curve.items())],
                1.0 if name in ("reads", "writes") else 0.0,
            )
            for name in ("bytes_read", "bytes_written", "reads", "writes")
        }
        out.append(Scaling(rnd, role, fanned, last.functions, last.compute_ms, anchor, fits))
    return out


@dataclass(frozen=True, slots=True)
class RoundProjection:
    """A job's modelled rounds at one fan-out on Lambda with S3 (a model), per round."""

    fanout: int
    rounds: int
    compute_ms: float  #: compute per round: a function's share (combine steps left out)
    store_ms: float  #: modelled S3 time per round, the same way
    throttle_ms: float  #: how much of :attr:`store_ms` the per-prefix rates added
    bound: Bound  #: what bounds most of the store time
    requests: float  #: store requests per round, all functions

    @property
    def store_over_compute(self) -> float | None:
        """Modelled store time over compute time, per round."""
        return self.store_ms / self.compute_ms if self.compute_ms > 0 else None


def project(
    parts: Sequence[Scaling], fanout: int, store: StoreProfile, speed: float = 1.0
) -> RoundProjection:
    """The job's modelled time per round at ``fanout``: the fanned parts' compute spread
    over the functions (divided by ``speed``, a cloud vCPU's speed over this machine's),
    every part's store time on S3."""
    compute = store_ms = throttle = requests = 0.0
    by_bound: dict[Bound, float] = {}
    for s in parts:
        part = s.at(fanout)
        t = store_time(part, store)
        if s.fanned:
            compute += part.compute_ms / speed / part.functions
        store_ms += t.total_ms
        throttle += t.throttle_ms
        requests += part.reads + part.writes
        by_bound[t.bound] = by_bound.get(t.bound, 0.0) + t.total_ms
    rounds = len({s.round for s in parts}) or 1
    bound = max(by_bound, key=lambda b: by_bound[b]) if by_bound else "none"
    return RoundProjection(
        fanout,
        rounds,
        compute / rounds,
        store_ms / rounds,
        throttle / rounds,
        bound,
        requests / rounds,
    )


def crossover(
    parts: Sequence[Scaling], store: StoreProfile, speed: float = 1.0, limit: int = MAX_FANOUT
) -> int | None:
    """The smallest fan-out (1..``limit``) at which the job's modelled store time per round
    reaches its compute time per round; None when it stays below up to ``limit``."""
    for fanout in range(1, limit + 1):
        p = project(parts, fanout, store, speed)
        if p.store_ms >= p.compute_ms:
            return fanout
    return None
