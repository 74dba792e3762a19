"""Pearson and Spearman correlation of two score vectors: how alike two models (or two runtimes of one) score pairs.

- Pearson: r = Σ (x_i − x̄)(y_i − ȳ) / sqrt(Σ (x_i − x̄)² · Σ (y_i − ȳ)²)
- Spearman: Pearson of the ranks, tied values sharing their mean rank

Both are NaN when either side is constant: no correlation is defined, and NaN fails every ``>=`` threshold. The one
implementation for the comparison stage and the int8 agreement check (numpy, because both call it per query too,
where scipy's per-call overhead and its constant-input warnings add nothing).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / norm) if norm > 0 else float("nan")


def average_ranks(values: ArrayLike) -> np.ndarray:
    """Ranks 0..n-1 with tied values sharing their mean rank."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    return pearson(average_ranks(x), average_ranks(y))
