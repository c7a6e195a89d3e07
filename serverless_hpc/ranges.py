"""Half-open ranges of items and how an input splits into shards. No project imports.

The dataset reader validates a requested range with :class:`Range`; a workload's spec splits
its input into ``n`` of them for a fan-out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Range:
    """A half-open range ``[start, end)`` of a workload's input items."""

    start: int
    end: int

    @property
    def size(self) -> int:
        """How many items the range holds."""
        return self.end - self.start


def split_ranges(total: int, n: int, *, offset: int = 0) -> list[Range]:
    """Split ``[offset, offset + total)`` into ``n`` contiguous, near-equal ranges.

    The first ``total % n`` ranges get one extra item, so sizes differ by at most one and
    the ranges cover the input exactly once. ``ValueError`` when that is impossible.
    """
    if n < 1:
        raise ValueError(f"shards must be >= 1, got {n}")
    if total < n:
        raise ValueError(f"cannot split {total} items into {n} non-empty shards")
    base, extra = divmod(total, n)
    out: list[Range] = []
    start = offset
    for i in range(n):
        end = start + base + (1 if i < extra else 0)
        out.append(Range(start, end))
        start = end
    return out
