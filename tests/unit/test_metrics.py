"""Ranking metrics: pair counts and PNR by hand, NDCG@k and MRR@k against ranx."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ranx import Qrels, Run, evaluate

from disranker.evaluation.metrics import (
    evaluate_rankings,
    mrr_at_k,
    ndcg_at_k,
    pair_counts,
    pairwise_accuracy,
    pnr,
    pnr_query_mean,
)


def test_pair_counts_concordant_discordant_and_ties_by_hand():
    # (2,1): equal scores -> tie; (2,0@.2), (1,0@.2) concordant; (2,0@.9), (1,0@.9) discordant; (0,0) not a pair.
    counts = pair_counts(np.array(["q"] * 4), np.array([2, 1, 0, 0]), np.array([0.5, 0.5, 0.2, 0.9]))
    assert counts.query_ids.tolist() == ["q"]
    assert (counts.concordant[0], counts.discordant[0], counts.tied[0], counts.pairs[0]) == (2, 2, 1, 5)
    assert pnr(["q"] * 4, [2, 1, 0, 0], [0.5, 0.5, 0.2, 0.9]) == 1.0
    assert pairwise_accuracy(["q"] * 4, [2, 1, 0, 0], [0.5, 0.5, 0.2, 0.9]) == pytest.approx((2 + 0.5) / 5)


def test_pair_counts_match_brute_force_with_many_ties():
    rng = np.random.default_rng(7)
    query_ids = rng.integers(0, 5, 200)
    labels = rng.integers(0, 5, 200)
    scores = rng.integers(0, 6, 200).astype(float)
    counts = pair_counts(query_ids, labels, scores)
    for position, query in enumerate(counts.query_ids):
        rows = np.flatnonzero(query_ids == query)
        higher = labels[rows][:, None] > labels[rows][None, :]
        score_i, score_j = scores[rows][:, None], scores[rows][None, :]
        assert counts.concordant[position] == (higher & (score_i > score_j)).sum()
        assert counts.discordant[position] == (higher & (score_i < score_j)).sum()
        assert counts.tied[position] == (higher & (score_i == score_j)).sum()


def test_zero_discordant_query_divides_by_one():
    assert pnr(["q"] * 3, [2, 1, 0], [3.0, 2.0, 1.0]) == 3.0
    assert pnr_query_mean(["q"] * 3, [2, 1, 0], [3.0, 2.0, 1.0]) == 3.0


def test_query_with_all_labels_equal_is_left_out_of_the_query_mean():
    query_ids = ["same", "same", "same", "q", "q"]
    labels = [1, 1, 1, 1, 0]
    scores = [0.3, 0.2, 0.1, 0.1, 0.9]
    counts = pair_counts(query_ids, labels, scores)
    assert counts.pairs.tolist() == [1, 0]  # sorted ids: "q", "same"
    assert pnr_query_mean(query_ids, labels, scores) == 0.0  # q alone: 0 concordant / max(1, 1)
    result = evaluate_rankings(query_ids, labels, scores)
    assert (result["n_queries"], result["n_preference_pairs"], result["n_ties"]) == (2, 1, 0)


def test_no_pair_at_all_scores_zero():
    result = evaluate_rankings(["q", "q"], [2, 2], [0.1, 0.2])
    assert (result["pnr"], result["pnr_query_mean"], result["pairwise_accuracy"], result["n_preference_pairs"]) == (
        0,
        0,
        0,
        0,
    )


def test_global_pnr_and_query_mean_differ():
    # q1: 1 concordant, 1 discordant (ratio 1); q2: 2 concordant, 0 discordant (ratio 2 / max(0, 1) = 2).
    query_ids = ["q1", "q1", "q1", "q2", "q2", "q2"]
    labels = [1, 0, 0, 1, 1, 0]
    scores = [0.5, 0.1, 0.9, 0.9, 0.8, 0.1]
    assert pnr(query_ids, labels, scores) == pytest.approx(3 / 1)
    assert pnr_query_mean(query_ids, labels, scores) == pytest.approx((1 + 2) / 2)
    assert pairwise_accuracy(query_ids, labels, scores) == pytest.approx(3 / 4)


def test_ndcg_by_hand_and_all_zero_query_scores_zero():
    # DCG@2 = 0 + (2^2 - 1) / log2(3); IDCG@2 = (2^2 - 1) / log2(2) + (2^1 - 1) / log2(3).
    expected = (3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["q"] * 3, [0, 2, 1], [0.9, 0.5, 0.1], k=2) == pytest.approx(expected)
    both = ndcg_at_k(["q", "q", "zero", "zero"], [1, 0, 0, 0], [0.9, 0.1, 0.5, 0.4], k=10)
    assert both == pytest.approx(0.5)


def test_equal_scores_keep_row_order():
    assert ndcg_at_k(["q", "q"], [0, 3], [1.0, 1.0], k=1) == 0.0
    assert ndcg_at_k(["q", "q"], [3, 0], [1.0, 1.0], k=1) == 1.0
    assert mrr_at_k(["q", "q"], [0, 3], [1.0, 1.0], k=10) == 0.5


def test_mrr_min_label_and_cutoff_by_hand():
    query_ids, labels, scores = ["q"] * 3, [1, 3, 0], [0.9, 0.5, 0.1]
    assert mrr_at_k(query_ids, labels, scores, k=10) == 1.0
    assert mrr_at_k(query_ids, labels, scores, k=10, min_label=3) == 0.5
    assert mrr_at_k(query_ids, labels, scores, k=1, min_label=3) == 0.0
    assert mrr_at_k(query_ids, labels, scores, k=10, min_label=4) == 0.0


def _random_judged_run(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    query_ids, labels = [], []
    for query in range(40):
        size = int(rng.integers(1, 25))
        query_labels = rng.integers(0, 5, size)
        query_labels[rng.integers(size)] = rng.integers(1, 5)  # ranx needs a relevant document per query
        query_ids += [f"q{query}"] * size
        labels += query_labels.tolist()
    return np.array(query_ids, dtype=object), np.array(labels), rng.random(len(labels))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_and_mrr_match_ranx(seed):
    query_ids, labels, scores = _random_judged_run(seed)
    doc_ids = [f"d{row}" for row in range(len(labels))]
    qrels, run = {}, {}
    for query, doc, label, score in zip(query_ids, doc_ids, labels, scores, strict=True):
        qrels.setdefault(query, {})[doc] = int(label)
        run.setdefault(query, {})[doc] = float(score)
    # ranx's ndcg_burges uses gain 2^label - 1 like ours; its mrr counts labels >= 1 as relevant.
    expected = evaluate(
        Qrels.from_dict(qrels), Run.from_dict(run), ["ndcg_burges@1", "ndcg_burges@5", "ndcg_burges@10", "mrr@10"]
    )
    result = evaluate_rankings(query_ids, labels, scores)
    for k in (1, 5, 10):
        assert result[f"ndcg@{k}"] == pytest.approx(expected[f"ndcg_burges@{k}"], abs=1e-6)
        assert ndcg_at_k(query_ids, labels, scores, k) == pytest.approx(expected[f"ndcg_burges@{k}"], abs=1e-6)
    assert result["mrr@10"] == pytest.approx(expected["mrr@10"], abs=1e-6)


def test_evaluate_rankings_returns_plain_python_numbers():
    result = evaluate_rankings(
        np.array([1, 1, 2, 2]), np.array([1, 0, 2, 0], dtype=np.int8), np.array([0.2, 0.1, 0.3, 0.4], dtype=np.float32)
    )
    assert list(result) == [
        "pnr",
        "pnr_query_mean",
        "pairwise_accuracy",
        "ndcg@1",
        "ndcg@5",
        "ndcg@10",
        "mrr@10",
        "n_queries",
        "n_preference_pairs",
        "n_ties",
    ]
    assert all(type(value) is float for key, value in result.items() if not key.startswith("n_"))
    assert all(type(result[key]) is int for key in ("n_queries", "n_preference_pairs", "n_ties"))
    assert (result["n_queries"], result["n_preference_pairs"], result["pnr"]) == (2, 2, 1.0)


@pytest.mark.parametrize(
    ("query_ids", "labels", "scores", "message"),
    [
        ([], [], [], "empty"),
        (["q", "q"], [1], [0.1, 0.2], "one length"),
        (["q", "q"], [1, 0], [0.1, float("nan")], "finite"),
        (["q", "q"], [1.5, 0.0], [0.1, 0.2], "integers"),
        (["q", "q"], [1, -1], [0.1, 0.2], "non-negative"),
    ],
)
def test_bad_input_is_refused(query_ids, labels, scores, message):
    with pytest.raises(ValueError, match=message):
        evaluate_rankings(query_ids, labels, scores)


def test_cutoff_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        ndcg_at_k(["q"], [1], [0.5], k=0)
