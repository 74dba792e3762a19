"""Distillation losses for the BERT cross-encoder student (DisRanker's hybrid Point-MSE + Margin-MSE, arXiv 2411.04539).

All losses take one batch of query groups, each tensor [n_groups, group_size]: ``student`` scores, ``teacher``
scores for the same (query, doc) slots, and an optional boolean ``mask`` (False = padding slot). Padding slots form
no pairs, carry no loss and receive zero gradient whatever value they hold; a batch with nothing to compare returns
a zero still connected to ``student``. Shape checks and masking are shared with :mod:`disranker.teacher.losses`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from disranker.models.groups import check_groups, masked_mean

NormalizeMethod = Literal["none", "zscore_per_group", "minmax_per_group"]
NORMALIZE_METHODS: tuple[str, ...] = ("none", "zscore_per_group", "minmax_per_group")


class DistillLoss(NamedTuple):
    """The hybrid loss and its two parts (``point`` and ``margin`` are unweighted, for logging)."""

    total: Tensor
    point: Tensor
    margin: Tensor


def _errors(student: Tensor, teacher: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """``e = s_S − s_T`` with padding filled by 0 (so NaN there cannot leak into gradients), and the valid mask."""
    valid = check_groups(mask, student=student, teacher=teacher)
    return (student - teacher).masked_fill(~valid, 0.0), valid


def pointwise_mse(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """Point-MSE: regress each student score onto the teacher's score for the same (query, doc).

    ``L_point = mean over valid slots (g, i) of (s_S,gi − s_T,gi)²``

    Score scale: both are raw logits, compared as they are. The LLM teacher's logits may live on a different scale
    from a fresh BERT head's; rescaling is the caller's explicit choice via :func:`normalize_teacher_scores`.

    References:
        - Ye et al. 2024, "Best Practices for Distilling Large Language Models into BERT for Web Search Ranking"
          (arXiv 2411.04539): the Point-MSE half of the hybrid loss.

    Inputs:
        +-----------------------------------+-----------------------------------+--------------------------+
        | student [n_groups, group_size]    | teacher [n_groups, group_size]    | mask (optional, bool)    |
        +===================================+===================================+==========================+
        | student logits                    | teacher logits (no grad needed)   | False = padding slot     |
        +-----------------------------------+-----------------------------------+--------------------------+

    Relations: pins absolute scores, which :func:`margin_mse` leaves free; combined in :func:`hybrid_distill_loss`.
    """
    error, valid = _errors(student, teacher, mask)
    return masked_mean(error.square(), valid)


def margin_mse(student: Tensor, teacher: Tensor, mask: Tensor | None = None, pairs: Tensor | None = None) -> Tensor:
    """Margin-MSE: match the student's score margins between two docs of one query to the teacher's.

    ``L_margin = mean over pairs (g, i, j), i < j, of ((s_S,gi − s_S,gj) − (s_T,gi − s_T,gj))²``

    With ``e = s_S − s_T`` the term is ``(e_gi − e_gj)²``, so adding a constant per group to the student (or the
    teacher) leaves the loss unchanged: only the order and spacing within a query are taught. Pairs (i, j) and
    (j, i) give the same term, so counting i < j once gives the same mean as all i ≠ j.

    Score scale: raw logits, as in :func:`pointwise_mse`; the teacher's margins are taught at their own scale.

    References:
        - Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
          Distillation" (arXiv 2010.02666).
        - sentence-transformers ``MarginMSELoss`` (the same loss on (query, pos, neg) triplets).

    Inputs:
        +-----------------------------+-----------------------------+-------------------+--------------------------+
        | student [n, group_size]     | teacher [n, group_size]     | mask (bool)       | pairs (optional)         |
        +=============================+=============================+===================+==========================+
        | student logits              | teacher logits              | False = padding   | Long [n_pairs, 3] of     |
        |                             |                             |                   | (group, i, j); default:  |
        |                             |                             |                   | every valid i < j pair   |
        +-----------------------------+-----------------------------+-------------------+--------------------------+

    Relations: :func:`sample_pairs` draws ``pairs``; :func:`hybrid_distill_loss` adds :func:`pointwise_mse`.
    """
    error, valid = _errors(student, teacher, mask)
    if pairs is None:
        upper = torch.ones(valid.shape[1], valid.shape[1], dtype=torch.bool, device=valid.device).triu(diagonal=1)
        keep = upper & valid.unsqueeze(2) & valid.unsqueeze(1)
        return masked_mean((error.unsqueeze(2) - error.unsqueeze(1)).square(), keep)
    if pairs.dim() != 2 or pairs.shape[1] != 3 or pairs.dtype != torch.long:
        raise ValueError(
            f"pairs has shape {tuple(pairs.shape)} and dtype {pairs.dtype}: it must be a torch.long tensor "
            "[n_pairs, 3] of (group, i, j) rows, as sample_pairs returns"
        )
    group, i, j = pairs.unbind(dim=1)
    n_groups, group_size = valid.shape
    in_range = (group >= 0) & (group < n_groups) & (i >= 0) & (i < group_size) & (j >= 0) & (j < group_size)
    if not bool(in_range.all()):
        raise ValueError(f"pairs has (group, i, j) rows outside the [{n_groups}, {group_size}] batch")
    if not bool((valid[group, i] & valid[group, j] & (i != j)).all()):
        raise ValueError("pairs must join two different valid slots: a row points at padding or has i == j")
    # A mean over zero pairs (an empty sample) is 0, still connected to student, like the all-pairs case.
    return masked_mean((error[group, i] - error[group, j]).square(), torch.ones_like(group, dtype=torch.bool))


def sample_pairs(mask: Tensor, pairs_per_group: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw up to ``pairs_per_group`` distinct pairs (i < j) of valid slots per group, uniformly without replacement.

    A group with fewer valid pairs contributes all of them; a group with under two valid slots contributes none.
    Returns a ``torch.long`` tensor [n_pairs, 3] of (group, i, j) rows sorted by (group, i, j), on ``mask``'s device,
    ready for ``margin_mse(..., pairs=...)``. ``generator`` (on ``mask``'s device) makes the draw reproducible.
    """
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask has shape {tuple(mask.shape)} and dtype {mask.dtype}: it must be bool [n, size]")
    if pairs_per_group < 1:
        raise ValueError(f"pairs_per_group must be >= 1, got {pairs_per_group}")
    n_groups, group_size = mask.shape
    upper = torch.ones(group_size, group_size, dtype=torch.bool, device=mask.device).triu(diagonal=1)
    candidates = (upper & mask.unsqueeze(2) & mask.unsqueeze(1)).reshape(n_groups, -1)
    # The k smallest of i.i.d. uniform keys are a uniform k-subset; non-candidates get +inf so they come last.
    keys = torch.rand(candidates.shape, generator=generator, device=mask.device).masked_fill(~candidates, float("inf"))
    k = min(pairs_per_group, candidates.shape[1])
    chosen_keys, flat = keys.topk(k, dim=1, largest=False)
    rows = torch.arange(n_groups, device=mask.device).unsqueeze(1).expand(-1, k)
    linear = (rows * candidates.shape[1] + flat)[chosen_keys.isfinite()].sort().values
    group, within = linear // candidates.shape[1], linear % candidates.shape[1]
    return torch.stack([group, within // group_size, within % group_size], dim=1)


def hybrid_distill_loss(
    student: Tensor,
    teacher: Tensor,
    mask: Tensor | None = None,
    margin_weight: float = 1.0,
    pairs: Tensor | None = None,
) -> DistillLoss:
    """DisRanker's hybrid distillation loss: Point-MSE plus weighted Margin-MSE.

    ``L = L_point + λ · L_margin``  with ``λ = margin_weight``

    Point-MSE anchors the absolute score scale (useful for thresholds and for mixing scores across queries);
    Margin-MSE teaches the within-query order and spacing. Returns a :class:`DistillLoss` (total, point, margin) so
    training can log both parts; call ``.total.backward()``.

    Score scale: raw logits on both sides; see :func:`normalize_teacher_scores` for the explicit rescaling option.

    References:
        - Ye et al. 2024 (arXiv 2411.04539), the hybrid Point-MSE + Margin-MSE student loss.
        - Hofstätter et al. 2020 (arXiv 2010.02666), Margin-MSE.

    Inputs: as :func:`margin_mse` (``pairs`` restricts only the margin part; the point part uses every valid slot).

    Relations: :func:`listwise_kd` is the listwise alternative that ignores absolute scale entirely.
    """
    point = pointwise_mse(student, teacher, mask)
    margin = margin_mse(student, teacher, mask, pairs)
    return DistillLoss(total=point + margin_weight * margin, point=point, margin=margin)


def listwise_kd(student: Tensor, teacher: Tensor, mask: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Listwise knowledge distillation: softmax cross-entropy from the teacher's to the student's score distribution.

    ``p_g = softmax(s_T,g / T)``,  ``L_g = −T² · Σ_i p_gi · log_softmax(s_S,g / T)_i``,  ``L = mean_g L_g``

    The softmax runs over each group's valid slots. This equals ``T² · KL(p_g ‖ q_g)`` plus the teacher's entropy,
    which has no gradient, so it trains exactly like KL but its minimum is the entropy, not 0.

    Score scale: raw logits; the loss is invariant to adding a constant per group on either side. We multiply by
    T² (Hinton et al. 2015) so gradient magnitudes stay comparable when ``temperature`` changes; at T = 1 it is the
    plain cross-entropy. Groups with fewer than two valid slots have nothing to rank and are skipped.

    References:
        - Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (arXiv 1503.02531).

    Inputs: student, teacher, mask as :func:`pointwise_mse`.

    Relations: listwise counterpart of :func:`margin_mse`; not part of DisRanker's hybrid loss.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    valid = check_groups(mask, student=student, teacher=teacher)
    # The dtype minimum rather than -inf keeps fully padded groups finite; their weight below is 0 anyway.
    floor = torch.finfo(student.dtype).min
    target = F.softmax((teacher / temperature).masked_fill(~valid, floor), dim=1)
    log_prob = F.log_softmax((student / temperature).masked_fill(~valid, floor), dim=1)
    per_group = -torch.where(valid, target * log_prob, 0.0).sum(dim=1) * temperature**2
    return masked_mean(per_group, valid.sum(dim=1) >= 2)


def normalize_teacher_scores(
    teacher: Tensor, mask: Tensor | None = None, method: NormalizeMethod = "none", eps: float = 1e-6
) -> Tensor:
    """Rescale teacher logits per group before distillation; the explicit opt-in the losses never apply themselves.

    - ``"none"``: return ``teacher`` as it is (raw logits, the paper's setting).
    - ``"zscore_per_group"``: ``(t − mean_g) / std_g`` over the group's valid slots (population std); margins become
      units of the group's spread, so Margin-MSE no longer depends on the teacher's logit temperature.
    - ``"minmax_per_group"``: ``(t − min_g) / (max_g − min_g)`` into [0, 1]; the best doc of each group maps to 1.

    Shapes: teacher, mask [n_groups, group_size] → same shape. Except with ``"none"``, padding slots come back as 0;
    a group whose valid scores are all equal (spread below ``eps``) comes back as all 0 rather than dividing by 0.
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"unknown normalization {method!r}; allowed: {', '.join(NORMALIZE_METHODS)}")
    valid = check_groups(mask, teacher=teacher)
    if method == "none":
        return teacher
    filled = teacher.masked_fill(~valid, 0.0)
    if method == "zscore_per_group":
        count = valid.sum(dim=1, keepdim=True).clamp_min(1)
        centred = torch.where(valid, filled - filled.sum(dim=1, keepdim=True) / count, 0.0)
        # Clamping the variance (not the std) keeps sqrt's gradient finite for a constant group.
        std = (centred.square().sum(dim=1, keepdim=True) / count).clamp_min(eps**2).sqrt()
        return centred / std
    low = filled.masked_fill(~valid, float("inf")).amin(dim=1, keepdim=True)
    high = filled.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)
    # A fully padded group has low = inf, high = -inf; zeroing both keeps its (all-padding) output at 0.
    has_any = valid.any(dim=1, keepdim=True)
    low, high = torch.where(has_any, low, 0.0), torch.where(has_any, high, 0.0)
    return torch.where(valid, filled - low, 0.0) / (high - low).clamp_min(eps)
