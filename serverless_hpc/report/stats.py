"""Statistics of the report: medians, percentiles, confidence intervals. No I/O, no plotting.

Two kinds of 95% interval, each where it fits:

* :func:`median_ci`: distribution-free, from order statistics (the binomial method: the
  interval between the j-th and k-th smallest of n values covers the median with probability
  sum C(n,i)/2^n for j <= i < k). With fewer than 6 values no such interval reaches 95%, and
  None is returned rather than a number that does not mean what its header says.
* :func:`bootstrap_median_ci` and :func:`bootstrap_ratio_ci`: percentile bootstraps of a
  median (a cost per job, hence a break-even rate) and of the ratio of two medians (two
  targets, two runs), with a fixed seed so a report is reproducible.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any, Final

CONFIDENCE: Final = 0.95
#: Bootstrap resamples: enough for stable 2.5/97.5 percentiles, cheap for the sample sizes
#: a run has (tens to hundreds of values per row).
RESAMPLES: Final = 2000
SEED: Final = 20261130


def median_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Distribution-free CI of the median, or None when ``len(values)`` is too small."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None
    alpha = 1 - confidence
    # Largest j (1-based) with P(Binomial(n, 1/2) < j) <= alpha/2; the interval is [x_j, x_{n+1-j}].
    # Exact integer arithmetic up to EXACT_N values; above, the pmf from log-gamma (relative
    # error ~1e-12, far below any rank boundary that matters), so the cost stays linear in n.
    cdf = 0.0
    j = 0
    for i in range(n + 1):
        p = _binom_half_pmf(n, i)
        if cdf + p > alpha / 2:
            break
        cdf += p
        j = i + 1
    if j < 1:
        return None
    return xs[j - 1], xs[n - j]


#: Sample sizes up to which :func:`median_ci` uses exact binomial coefficients.
EXACT_N: Final = 400


def _binom_half_pmf(n: int, i: int) -> float:
    """P(Binomial(n, 1/2) = i)."""
    if n <= EXACT_N:
        return math.comb(n, i) / 2**n
    log_p = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
    return math.exp(log_p)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None; None when there are none."""
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def bootstrap_ratio_ci(
    base: Sequence[float],
    new: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of median(new) / median(base), each sample resampled on its own.

    None when a sample has fewer than 2 values (a resample of one value is that value: the
    interval would claim a certainty the data do not have) or the ratio is undefined (a zero
    base median) in more than 5% of the resamples.
    """
    import numpy as np

    if len(base) < 2 or len(new) < 2:
        return None
    rng = np.random.default_rng(seed)
    num = _resampled_medians(np.asarray(new, dtype=float), rng, resamples)
    den = _resampled_medians(np.asarray(base, dtype=float), rng, resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    finite = ratios[np.isfinite(ratios)]
    if len(finite) < 0.95 * resamples:
        return None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


#: Values drawn per chunk of resamples: bounds the bootstrap's memory (8 bytes each).
CHUNK_VALUES: Final = 2_000_000


def _resampled_medians(a: Any, rng: Any, resamples: int) -> Any:
    """Medians of ``resamples`` resamples of ``a``, drawn in chunks of bounded memory."""
    import numpy as np

    per_chunk = max(1, CHUNK_VALUES // max(len(a), 1))
    out = []
    for start in range(0, resamples, per_chunk):
        k = min(per_chunk, resamples - start)
        out.append(np.median(a[rng.integers(0, len(a), size=(k, len(a)))], axis=1))
    return np.concatenate(out)


def bootstrap_median_ci(
    values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float] | None:
    """Percentile-bootstrap 95% CI of the median of ``values`` (None below 2 values)."""
    import numpy as np

    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    meds = _resampled_medians(np.asarray(values, dtype=float), rng, resamples)
    lo, hi = np.quantile(meds, [(1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2])
    return float(lo), float(hi)


def median_ratio_ci(
    base: Sequence[float], new: Sequence[float]
) -> tuple[float, tuple[float, float] | None] | None:
    """The ratio median(new)/median(base) and its bootstrap 95% CI (None: too few values)."""
    if not base or not new or statistics.median(base) == 0:
        return None
    return statistics.median(new) / statistics.median(base), bootstrap_ratio_ci(base, new)
