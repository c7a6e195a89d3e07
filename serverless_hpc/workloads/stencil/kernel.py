"""The stencil's numerics (numpy): the initial field, the Jacobi step, and tile geometry.

Bit-identity across tilings rests on two facts: every cell is updated by the same
element-wise operations on the same operand values whatever block it is computed in
(numpy's element-wise float64 add, subtract and multiply are correctly rounded, with no
fused multiply-add), and a block's edge cells are never updated in it, so after ``h`` steps
exactly the cells at least ``h`` from the block's edge are correct: a tile with an ``h``-deep
halo comes out whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from serverless_hpc.workloads.stencil import tile_ranges


def initial_rows(n: int, seed: int, r0: int, r1: int) -> np.ndarray:
    """Rows ``[r0, r1)`` of the initial field: ``default_rng(seed).random((n, n))`` with the
    outer ring 0, generated without the rows before them (one 64-bit draw per value, so the
    generator is advanced past them)."""
    gen = np.random.PCG64(seed)
    gen.advance(r0 * n)
    rows = np.random.Generator(gen).random((r1 - r0, n))
    if r0 == 0:
        rows[0, :] = 0.0
    if r1 == n:
        rows[-1, :] = 0.0
    rows[:, 0] = 0.0
    rows[:, -1] = 0.0
    return rows


def advance(block: np.ndarray, steps: int, alpha: float) -> np.ndarray:
    """``block`` after ``steps`` Jacobi steps of its interior (its edge cells held).

    Computes ``u + alpha * ((u_n + u_s + u_w + u_e) - 4.0 * u)`` with the four added left to
    right, into a second buffer (a Jacobi step reads only the old values). ``block`` itself
    is one of the two buffers when it is C-contiguous float64: it may be overwritten.
    """
    cur = np.ascontiguousarray(block, dtype=np.float64)
    if steps <= 0 or min(cur.shape) < 3:
        return cur
    nxt = np.empty_like(cur)  # its edge cells are held: copy them once, never write them
    nxt[0, :], nxt[-1, :], nxt[:, 0], nxt[:, -1] = cur[0, :], cur[-1, :], cur[:, 0], cur[:, -1]
    quad = np.empty((cur.shape[0] - 2, cur.shape[1] - 2))
    for _ in range(steps):
        u, acc = cur[1:-1, 1:-1], nxt[1:-1, 1:-1]
        np.add(cur[:-2, 1:-1], cur[2:, 1:-1], out=acc)  # u_n + u_s
        acc += cur[1:-1, :-2]  # + u_w
        acc += cur[1:-1, 2:]  # + u_e
        np.multiply(u, 4.0, out=quad)
        acc -= quad  # (sum) - 4.0 * u
        acc *= alpha  # alpha * (...)
        acc += u  # u + alpha * (...): addition commutes exactly
        cur, nxt = nxt, cur
    return cur


def reference(n: int, steps: int, seed: int, alpha: float) -> np.ndarray:
    """The single-process run: the whole field advanced ``steps`` steps."""
    return advance(initial_rows(n, seed, 0, n), steps, alpha)


def digest(field: np.ndarray) -> str:
    """sha256 of the field's C-order little-endian float64 bytes."""
    data = np.ascontiguousarray(field, dtype="<f8").tobytes()
    return hashlib.sha256(data).hexdigest()


def summarise(field: np.ndarray) -> dict[str, str | float]:
    """The batch line's figures of a final field: its :func:`digest` and its sum."""
    return {"sha256": digest(field), "sum": float(np.sum(field))}


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of the grid: rows ``[r0, r1)``, cols ``[c0, c1)``."""

    r0: int
    r1: int
    c0: int
    c1: int

    def grow(self, h: int, n: int) -> Box:
        """This box with an ``h``-deep margin, clipped to the NxN grid."""
        return Box(
            max(0, self.r0 - h), min(n, self.r1 + h), max(0, self.c0 - h), min(n, self.c1 + h)
        )

    def meet(self, other: Box) -> Box | None:
        """The intersection (None when empty)."""
        b = Box(
            max(self.r0, other.r0),
            min(self.r1, other.r1),
            max(self.c0, other.c0),
            min(self.c1, other.c1),
        )
        return b if b.r0 < b.r1 and b.c0 < b.c1 else None

    def within(self, outer: Box) -> tuple[slice, slice]:
        """This box's slices inside an array covering ``outer``."""
        return (
            slice(self.r0 - outer.r0, self.r1 - outer.r0),
            slice(self.c0 - outer.c0, self.c1 - outer.c0),
        )

    @property
    def cells(self) -> int:
        """Cells in the box."""
        return (self.r1 - self.r0) * (self.c1 - self.c0)


def tiles(n: int, count: int) -> list[Box]:
    """Every tile's box, row-major (see :func:`~serverless_hpc.workloads.stencil.tile_ranges`)."""
    return [Box(r.start, r.end, c.start, c.end) for r, c in tile_ranges(n, count)]


def halo_sources(boxes: list[Box], me: int, h: int, n: int) -> list[tuple[int, Box]]:
    """The other tiles whose cells tile ``me``'s ``h``-deep halo, with the piece of each."""
    ext = boxes[me].grow(h, n)
    out = []
    for i, b in enumerate(boxes):
        piece = b.meet(ext) if i != me else None
        if piece is not None:
            out.append((i, piece))
    return out


def halo_targets(boxes: list[Box], me: int, h: int, n: int) -> list[tuple[int, Box]]:
    """The other tiles whose ``h``-deep halo needs cells of ``me``, with the piece of each."""
    out = []
    for i, b in enumerate(boxes):
        piece = boxes[me].meet(b.grow(h, n)) if i != me else None
        if piece is not None:
            out.append((i, piece))
    return out
