"""Ranking losses for fine-tuning the LLM teacher on graded judgments (DisRanker SFT, arXiv 2411.04539).

Every loss takes one batch of query groups:

| argument | shape                   | dtype | meaning                                                   |
|----------|-------------------------|-------|-----------------------------------------------------------|
| scores   | [n_groups, group_size]  | float | raw logits, one per (query, doc); never sigmoid-squashed |
| labels   | [n_groups, group_size]  | any   | graded relevance (0–4 in our judgments), higher = better  |
| mask     | [n_groups, group_size]  | bool  | False marks a padding slot; ``None`` means all are valid  |

Padding slots form no pairs, carry no loss and receive zero gradient, whatever value they hold (NaN included).
A batch with nothing to learn from (no pair with different labels, no group with a positive) returns a zero that
is still connected to ``scores``, so ``loss.backward()`` and gradient accumulation work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from disranker.models.groups import check_groups, masked_mean


def _ordered_pairs(scores: Tensor, labels: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """``diff[g, i, j] = s_i − s_j`` and ``pairs[g, i, j] = (y_i > y_j)`` over valid slots, both [n, size, size]."""
    valid = check_groups(mask, scores=scores, labels=labels)
    # Filling padding before any arithmetic keeps a NaN or inf there from poisoning the forward or backward pass.
    scores = scores.masked_fill(~valid, 0.0)
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)
    pairs = (labels.unsqueeze(2) > labels.unsqueeze(1)) & valid.unsqueeze(2) & valid.unsqueeze(1)
    return diff, pairs


def pairwise_hinge(scores: Tensor, labels: Tensor, mask: Tensor | None = None, margin: float = 1.0) -> Tensor:
    """Pairwise hinge loss, DisRanker's SFT objective for the teacher.

    ``L = mean over (g, i, j) with y_gi > y_gj of max(0, m − (s_gi − s_gj))``

    Shapes: scores, labels, mask [n_groups, group_size] → scalar. Pairs are pooled over the batch, so a group with
    more ordered pairs weighs more. Ties (y_i = y_j) form no pair.

    Reference: Ye et al. 2024, "Best Practices for Distilling Large Language Models into BERT for Web Search
    Ranking" (arXiv 2411.04539), §3.

    Notes: ``scores`` are raw logits; ``margin`` is in logit units. The gradient is zero once every pair is
    separated by at least ``margin``, so the loss stops pushing scores apart (unlike RankNet).
    """
    diff, pairs = _ordered_pairs(scores, labels, mask)
    return masked_mean(F.relu(margin - diff), pairs)


def ranknet(scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """RankNet: logistic loss on score differences.

    ``L = mean over (g, i, j) with y_gi > y_gj of log(1 + exp(−(s_gi − s_gj)))``

    Shapes: scores, labels, mask [n_groups, group_size] → scalar; pairs pooled over the batch as in
    :func:`pairwise_hinge`.

    Reference: Burges et al. 2005, "Learning to Rank using Gradient Descent" (ICML).

    Notes: ``scores`` are raw logits, so ``sigmoid(s_i − s_j)`` is the modelled P(i ranks above j). Computed as
    ``softplus(−diff)``, which neither overflows for large negative differences nor loses precision near zero.
    """
    diff, pairs = _ordered_pairs(scores, labels, mask)
    return masked_mean(F.softplus(-diff), pairs)


def listwise_softmax_ce(scores: Tensor, labels: Tensor, mask: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Listwise softmax cross-entropy against exponential-gain targets (ListNet top-1 with graded relevance).

    ``p_gi = (2^y_gi − 1) / Σ_j (2^y_gj − 1)``,  ``L_g = −Σ_i p_gi · log_softmax(s_g / T)_i``,  ``L = mean_g L_g``

    Shapes: scores, labels, mask [n_groups, group_size] → scalar. The softmax runs over each group's valid slots.

    References: Cao et al. 2007, "Learning to Rank: From Pairwise Approach to Listwise Approach" (ListNet);
    the 2^y − 1 gain is NDCG's (Järvelin & Kekäläinen 2002).

    Notes: we chose the 2^y − 1 gain over softmax(y) because it gives label 0 zero target mass (a non-relevant doc
    is never a target) and matches the NDCG gain we evaluate with. A group whose valid labels are all ≤ 0 has no
    target distribution and is skipped; the mean runs over the remaining groups. Labels below 0 count as 0.
    ``temperature`` divides the scores (raw logits) only, not the targets.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    valid = check_groups(mask, scores=scores, labels=labels)
    gain = torch.where(valid, torch.exp2(labels.to(scores.dtype)) - 1.0, 0.0).clamp_min(0.0)
    total_gain = gain.sum(dim=1, keepdim=True)
    target = gain / total_gain.clamp_min(torch.finfo(scores.dtype).tiny)
    # The dtype minimum rather than -inf: a fully padded group then gives a finite log-softmax, not NaN.
    logits = (scores / temperature).masked_fill(~valid, torch.finfo(scores.dtype).min)
    log_prob = F.log_softmax(logits, dim=1)
    per_group = -torch.where(target > 0, target * log_prob, 0.0).sum(dim=1)
    return masked_mean(per_group, total_gain.squeeze(1) > 0)


RANK_LOSSES: dict[str, Callable[..., Tensor]] = {
    "hinge": pairwise_hinge,
    "ranknet": ranknet,
    "listwise": listwise_softmax_ce,
}


def rank_loss(name: str, scores: Tensor, labels: Tensor, mask: Tensor | None = None, **options: float) -> Tensor:
    """The teacher rank loss called ``name`` (a key of :data:`RANK_LOSSES`) on one batch of groups.

    ``options`` go to the loss itself: ``margin`` for ``"hinge"``, ``temperature`` for ``"listwise"``; an option
    the loss does not take raises ``TypeError``.
    """
    try:
        loss = RANK_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown rank loss {name!r}; allowed: {', '.join(RANK_LOSSES)}") from None
    return loss(scores, labels, mask, **options)
