"""Ranking metrics over aligned arrays ``query_ids``, ``labels`` (graded 0–4) and ``scores``: pure numpy functions.

Every metric groups rows by query and sorts once by ``(query, -score)``; the sort is stable, so documents with
equal scores keep their original row order (the earlier row ranks higher). No loop runs per query or per pair.

Pair metrics look at every pair (i, j) of one query with ``labels[i] > labels[j]``; pairs with equal labels are not
counted. Such a pair is *concordant* when ``s_i > s_j``, *discordant* when ``s_i < s_j`` and *tied* when
``s_i == s_j``. Tied pairs are neither concordant nor discordant; they are reported apart as ``n_ties``.

- PNR (positive-negative ratio, Baidu's definition) = Σ_q conc_q / max(Σ_q disc_q, 1)
- PNR query mean = mean over queries with at least one pair of conc_q / max(disc_q, 1)
- pairwise accuracy = (conc + ½·ties) / max(conc + disc + ties, 1), over all pairs (a tie is a coin flip)
- NDCG@k = mean_q DCG@k / IDCG@k, DCG@k = Σ_{rank ≤ k} (2^label − 1) / log2(rank + 1)
- MRR@k = mean_q 1 / rank of the first document with label ≥ min_label in the top k (0 when none)

The ``max(·, 1)`` denominators keep every value finite and JSON-safe: a ranking with no discordant pair has a PNR
equal to its concordant count, and a set with no pair at all scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

NDCG_CUTOFFS = (1, 5, 10)
MRR_CUTOFF = 10


class PairCounts(NamedTuple):
    """Per-query pair counts; ``query_ids`` are the distinct query ids in sorted order."""

    query_ids: np.ndarray
    concordant: np.ndarray
    discordant: np.ndarray
    tied: np.ndarray

    @property
    def pairs(self) -> np.ndarray:
        """Pairs with different labels per query."""
        return self.concordant + self.discordant + self.tied


@dataclass(frozen=True)
class _RankedQueries:
    """Rows sorted by (query, score descending, row); ``rank`` is the 1-based rank inside the query."""

    query_ids: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    sorted_codes: np.ndarray
    rank: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    ideal_labels: np.ndarray


def _rank_queries(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> _RankedQueries:
    query_ids, labels, scores = np.asarray(query_ids), np.asarray(labels), np.asarray(scores)
    n = len(query_ids)
    if query_ids.ndim != 1 or labels.shape != (n,) or scores.shape != (n,):
        raise ValueError(
            f"query_ids, labels and scores must be 1-D of one length, got {query_ids.shape}, "
            f"{labels.shape}, {scores.shape}"
        )
    if n == 0:
        raise ValueError("nothing to evaluate: the arrays are empty")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be non-negative integers, got dtype {labels.dtype}")
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (no NaN or inf): a NaN would make the ranking arbitrary")
    # Sorting fixed-width strings is several times faster than sorting Python objects.
    if query_ids.dtype == object:
        query_ids = query_ids.astype(str)
    unique_ids, codes = np.unique(query_ids, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(unique_ids))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    labels = labels.astype(np.int64)
    # lexsort is stable: equal scores keep row order, which is the documented tie-break.
    order = np.lexsort((-scores, codes))
    ideal_order = np.lexsort((-labels, codes))
    sorted_codes = np.repeat(np.arange(len(unique_ids)), sizes)
    rank = np.arange(n) - starts[sorted_codes] + 1
    return _RankedQueries(
        unique_ids, starts, sizes, sorted_codes, rank, labels[order], scores[order], labels[ideal_order]
    )


def _pair_counts(ranked: _RankedQueries) -> PairCounts:
    """Count pairs from the higher-labelled side: each pair is seen once, from the document with the larger label.

    Within a query (scores descending) a document's tie block is the run of equal scores holding it. Against a
    lower-labelled document before the block the pair is discordant, inside it tied, after it concordant. Prefix
    sums of "label == v" per level v give those counts for all rows at once: O(n log n) for the sort, then
    O(n · levels) with five levels.
    """
    n = len(ranked.rank)
    query_start = ranked.starts[ranked.sorted_codes]
    query_end = query_start + ranked.sizes[ranked.sorted_codes]
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = (ranked.sorted_codes[1:] != ranked.sorted_codes[:-1]) | (ranked.scores[1:] != ranked.scores[:-1])
    block_starts = np.flatnonzero(new_block)
    block_ends = np.append(block_starts[1:], n)
    block = np.cumsum(new_block) - 1
    tie_start, tie_end = block_starts[block], block_ends[block]

    concordant = np.zeros(n, dtype=np.int64)
    discordant = np.zeros(n, dtype=np.int64)
    tied = np.zeros(n, dtype=np.int64)
    for level in np.unique(ranked.labels)[:-1]:
        prefix = np.concatenate(([0], np.cumsum(ranked.labels == level)))
        higher = ranked.labels > level
        discordant += higher * (prefix[tie_start] - prefix[query_start])
        tied += higher * (prefix[tie_end] - prefix[tie_start])
        concordant += higher * (prefix[query_end] - prefix[tie_end])
    per_query = [np.add.reduceat(counts, ranked.starts) for counts in (concordant, discordant, tied)]
    return PairCounts(ranked.query_ids, *per_query)


def pair_counts(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> PairCounts:
    """Concordant, discordant and tied pair counts per query (pairs of one query with different labels)."""
    return _pair_counts(_rank_queries(query_ids, labels, scores))


def _pnr(counts: PairCounts) -> float:
    return float(counts.concordant.sum() / max(int(counts.discordant.sum()), 1))


def _pnr_query_mean(counts: PairCounts) -> float:
    has_pairs = counts.pairs > 0
    if not has_pairs.any():
        return 0.0
    ratios = counts.concordant[has_pairs] / np.maximum(counts.discordant[has_pairs], 1)
    return float(ratios.mean())


def _pairwise_accuracy(counts: PairCounts) -> float:
    concordant, tied = int(counts.concordant.sum()), int(counts.tied.sum())
    return (concordant + 0.5 * tied) / max(int(counts.pairs.sum()), 1)


def pnr(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> float:
    """Global PNR = Σ_q conc_q / max(Σ_q disc_q, 1); tied pairs count in neither sum."""
    return _pnr(pair_counts(query_ids, labels, scores))


def pnr_query_mean(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> float:
    """Mean over queries of conc_q / max(disc_q, 1).

    Queries with no pair of different labels (e.g. all labels equal) are left out; 0.0 when no query has a pair.
    ``pair_counts(...).pairs == 0`` tells which queries were left out.
    """
    return _pnr_query_mean(pair_counts(query_ids, labels, scores))


def pairwise_accuracy(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> float:
    """(conc + ½·ties) / max(conc + disc + ties, 1) over all pairs pooled; a tie is scored as a coin flip."""
    return _pairwise_accuracy(pair_counts(query_ids, labels, scores))


def _check_cutoff(k: int) -> None:
    if k < 1:
        raise ValueError(f"the cutoff k must be at least 1, got {k}")


def _ndcg(ranked: _RankedQueries, k: int) -> float:
    return float(_ndcg_per_query(ranked, k).mean())


def _ndcg_per_query(ranked: _RankedQueries, k: int) -> np.ndarray:
    _check_cutoff(k)
    top = ranked.rank <= k
    discount = np.where(top, 1.0 / np.log2(ranked.rank + 1.0), 0.0)
    n_queries = len(ranked.query_ids)
    dcg = np.bincount(ranked.sorted_codes, weights=(2.0**ranked.labels - 1.0) * discount, minlength=n_queries)
    idcg = np.bincount(ranked.sorted_codes, weights=(2.0**ranked.ideal_labels - 1.0) * discount, minlength=n_queries)
    # A query whose labels are all 0 has IDCG 0 and scores 0, as in ranx.
    return np.divide(dcg, idcg, out=np.zeros(n_queries), where=idcg > 0)


def _mrr(ranked: _RankedQueries, k: int, min_label: int) -> float:
    _check_cutoff(k)
    hit_rank = np.where((ranked.labels >= min_label) & (ranked.rank <= k), ranked.rank, k + 1)
    first_hit = np.minimum.reduceat(hit_rank, ranked.starts)
    return float(np.where(first_hit <= k, 1.0 / first_hit, 0.0).mean())


def ndcg_at_k(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Mean over queries of DCG@k / IDCG@k with gain 2^label − 1 and discount 1 / log2(rank + 1).

    IDCG comes from the query's own labels sorted descending; a query with IDCG 0 (all labels 0) scores 0.
    Equal scores keep row order (stable sort), so the earlier row takes the better rank.
    """
    return _ndcg(_rank_queries(query_ids, labels, scores), k)


def ndcg_at_k_per_query(
    query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct query ids in sorted order, NDCG@k of each)``: what ``ndcg_at_k`` averages, for paired statistics
    over queries (``evaluation.statistics``)."""
    ranked = _rank_queries(query_ids, labels, scores)
    return ranked.query_ids, _ndcg_per_query(ranked, k)


def mrr_at_k(query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int, min_label: int = 1) -> float:
    """Mean over queries of 1 / rank of the first document with label ≥ ``min_label`` within the top k, else 0."""
    return _mrr(_rank_queries(query_ids, labels, scores), k, min_label)


def evaluate_rankings(
    query_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, *, mrr_min_label: int = 1
) -> dict[str, float | int]:
    """Every metric of this module from one sort, as plain Python numbers (JSON-ready).

    Keys: pnr, pnr_query_mean, pairwise_accuracy, ndcg@1, ndcg@5, ndcg@10, mrr@10, n_queries (all distinct
    queries, those without pairs included), n_preference_pairs (pairs with different labels, ties included), n_ties.
    """
    ranked = _rank_queries(query_ids, labels, scores)
    counts = _pair_counts(ranked)
    return {
        "pnr": _pnr(counts),
        "pnr_query_mean": _pnr_query_mean(counts),
        "pairwise_accuracy": _pairwise_accuracy(counts),
        **{f"ndcg@{k}": _ndcg(ranked, k) for k in NDCG_CUTOFFS},
        f"mrr@{MRR_CUTOFF}": _mrr(ranked, MRR_CUTOFF, mrr_min_label),
        "n_queries": len(ranked.query_ids),
        "n_preference_pairs": int(counts.pairs.sum()),
        "n_ties": int(counts.tied.sum()),
    }
