"""Paired bootstrap intervals over queries: is model A better than model B on this test set, and by how much?

Two models scored on the same queries give per-query values ``a_q`` and ``b_q`` (e.g. NDCG@10). Resampling the
*queries* with replacement (the same resample for both models: "paired") and recomputing the statistic each time
gives its sampling distribution; the interval is its percentiles. Pairing matters: queries differ far more in
difficulty than models do, and the difference of two independent intervals would hide that.

- ``difference``: mean_q a_q − mean_q b_q
- ``ratio``: mean_q a_q / mean_q b_q (e.g. distilled student / teacher)

``scipy.stats.bootstrap`` does the resampling (``paired=True``, percentile method); this module fixes the
conventions (95 %, 2,000 resamples, a seed) so every claim in the project is computed the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

N_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the full set of queries
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    statistic: Literal["difference", "ratio"] = "difference",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The statistic of per-query values ``a`` vs ``b`` (aligned: entry q of both is query q) and its 95 % interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D per-query values of one length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"a bootstrap over queries needs at least 2 queries, got {len(a)}")
    if statistic == "difference":

        def fn(x, y, axis=-1):
            return x.mean(axis=axis) - y.mean(axis=axis)
    elif statistic == "ratio":

        def fn(x, y, axis=-1):
            return x.mean(axis=axis) / y.mean(axis=axis)
    else:
        raise ValueError(f"statistic must be 'difference' or 'ratio', got {statistic!r}")
    result = stats.bootstrap(
        (a, b),
        fn,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(float(fn(a, b)), float(low), float(high))
