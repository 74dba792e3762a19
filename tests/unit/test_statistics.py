"""Paired bootstrap over queries: the point value is the plain statistic, the interval covers it and tightens with n."""

from __future__ import annotations

import numpy as np
import pytest

from disranker.evaluation import metrics
from disranker.evaluation.statistics import paired_bootstrap


def test_a_constant_gain_gives_a_zero_width_interval_at_the_gain():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.2, 0.8, size=300)
    interval = paired_bootstrap(b + 0.05, b)
    assert interval.value == pytest.approx(0.05)
    assert interval.ci_low == pytest.approx(0.05) and interval.ci_high == pytest.approx(0.05)  # pairing removes noise


def test_noise_widens_the_interval_around_the_true_difference_and_ratio():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.2, 0.8, size=400)
    a = b + 0.03 + rng.normal(0, 0.1, size=400)
    diff = paired_bootstrap(a, b)
    assert diff.value == pytest.approx(a.mean() - b.mean())
    assert diff.ci_low < diff.value < diff.ci_high and 0 < diff.ci_low  # a real gain: the interval is above 0
    assert diff.ci_high - diff.ci_low == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(400), rel=0.2)
    ratio = paired_bootstrap(a, b, statistic="ratio")
    assert ratio.value == pytest.approx(a.mean() / b.mean()) and ratio.ci_low < ratio.value < ratio.ci_high
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="of one length, got \\(3,\\) and \\(2,\\)"):
        paired_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 queries"):
        paired_bootstrap([1.0], [1.0])
    with pytest.raises(ValueError, match="'difference' or 'ratio'"):
        paired_bootstrap([1, 2], [1, 2], statistic="median")


def test_ndcg_per_query_averages_to_ndcg():
    qids = np.array(["b", "b", "a", "a", "a"], dtype=object)
    labels, scores = np.array([0, 2, 1, 0, 3]), np.array([0.9, 0.1, 0.5, 0.4, 0.3])
    ids, values = metrics.ndcg_at_k_per_query(qids, labels, scores, k=10)
    assert ids.tolist() == ["a", "b"] and values.mean() == pytest.approx(metrics.ndcg_at_k(qids, labels, scores, 10))
    assert values[1] == pytest.approx(3 / np.log2(3) / 3)  # b: the grade-2 doc at rank 2
