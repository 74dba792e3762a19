"""Teacher rank losses against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from disranker.teacher.losses import RANK_LOSSES, listwise_softmax_ce, pairwise_hinge, rank_loss, ranknet

# One group of three docs. Ordered pairs (y_i > y_j): (0,1) with s_0 − s_1 = 1.5, (0,2) with 1.0, (2,1) with 0.5.
SCORES = [[2.0, 0.5, 1.0]]
LABELS = [[2, 0, 1]]


def leaf(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, requires_grad=True)


def test_hinge_by_hand() -> None:
    # max(0, 1 − 1.5) = 0, max(0, 1 − 1.0) = 0, max(0, 1 − 0.5) = 0.5 → mean 0.5 / 3.
    loss = pairwise_hinge(leaf(SCORES), torch.tensor(LABELS))
    assert loss.item() == pytest.approx(1 / 6)
    # margin 2: 0.5 + 1.0 + 1.5 = 3.0 → mean 1.0.
    assert pairwise_hinge(leaf(SCORES), torch.tensor(LABELS), margin=2.0).item() == pytest.approx(1.0)


def test_ranknet_by_hand() -> None:
    # log(1 + e^−1.5) = 0.2014133, log(1 + e^−1) = 0.3132617, log(1 + e^−0.5) = 0.4740770 → mean 0.3295840.
    loss = ranknet(leaf(SCORES), torch.tensor(LABELS))
    assert loss.item() == pytest.approx(0.3295840, abs=1e-6)


def test_listwise_by_hand() -> None:
    # Gains 2^y − 1 = [3, 0, 1] → targets [0.75, 0, 0.25]; −Σ p·(s − lse) = lse − (0.75·2 + 0.25·1)
    # with lse = log(e^2 + e^0.5 + e^1) = 2.4643688 → 0.7143688.
    loss = listwise_softmax_ce(leaf(SCORES), torch.tensor(LABELS))
    assert loss.item() == pytest.approx(0.7143688, abs=1e-6)


def test_listwise_temperature_divides_scores() -> None:
    doubled = [[4.0, 1.0, 2.0]]
    loss = listwise_softmax_ce(leaf(doubled), torch.tensor(LABELS), temperature=2.0)
    assert loss.item() == pytest.approx(0.7143688, abs=1e-6)


def test_listwise_skips_groups_without_positive() -> None:
    scores = leaf([SCORES[0], [5.0, -3.0, 0.0]])
    labels = torch.tensor([LABELS[0], [0, 0, 0]])
    assert listwise_softmax_ce(scores, labels).item() == pytest.approx(0.7143688, abs=1e-6)


def test_pairs_pool_over_groups() -> None:
    # Group 0 gives three hinge terms summing to 0.5; group 1 one pair with s_0 − s_1 = −1 → 2. Mean (0.5 + 2) / 4.
    scores = leaf([SCORES[0], [0.0, 1.0, 9.0]])
    labels = torch.tensor([LABELS[0], [1, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert pairwise_hinge(scores, labels, mask).item() == pytest.approx(2.5 / 4)


@pytest.mark.parametrize("name", sorted(RANK_LOSSES))
def test_mask_ignores_padding(name: str) -> None:
    labels = torch.tensor([[2, 0, 1, 3], [1, 0, 4, 4]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    scores = leaf([[2.0, 0.5, 1.0, -7.0], [0.3, 0.9, 8.0, -8.0]])
    other = leaf([[2.0, 0.5, 1.0, 50.0], [0.3, 0.9, float("nan"), float("inf")]])
    base, changed = rank_loss(name, scores, labels, mask), rank_loss(name, other, labels, mask)
    assert changed.item() == pytest.approx(base.item())
    changed.backward()
    assert torch.isfinite(other.grad).all()
    assert (other.grad[~mask] == 0).all()


@pytest.mark.parametrize("name", sorted(RANK_LOSSES))
def test_gradient_flows(name: str) -> None:
    scores = leaf(SCORES)
    rank_loss(name, scores, torch.tensor(LABELS)).backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(RANK_LOSSES))
def test_loss_falls_when_order_becomes_correct(name: str) -> None:
    labels = torch.tensor([[3, 2, 1, 0]])
    wrong = rank_loss(name, torch.tensor([[0.0, 1.0, 2.0, 3.0]]), labels)
    right = rank_loss(name, torch.tensor([[3.0, 2.0, 1.0, 0.0]]), labels)
    assert right.item() < wrong.item()


@pytest.mark.parametrize("name", sorted(RANK_LOSSES))
def test_nothing_to_learn_gives_zero_with_grad(name: str) -> None:
    # Equal labels form no pair and (all 0) have no positive target; the second group is all padding.
    scores = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    labels = torch.zeros(2, 3, dtype=torch.long)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    loss = rank_loss(name, scores, labels, mask)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros(2, 3))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"scores has shape \(4, 8\) but labels has shape \(4, 7\)"):
        pairwise_hinge(torch.zeros(4, 8), torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r"scores has shape \(4, 8\) but mask has shape \(4, 9\)"):
        ranknet(torch.zeros(4, 8), torch.zeros(4, 8), torch.ones(4, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"scores has shape \(8,\): it must be 2-D"):
        listwise_softmax_ce(torch.zeros(8), torch.zeros(8))


def test_mask_must_be_bool() -> None:
    with pytest.raises(TypeError, match="mask has dtype torch.int64"):
        pairwise_hinge(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.long))


def test_rank_loss_dispatches_and_lists_names() -> None:
    scores, labels = torch.tensor(SCORES), torch.tensor(LABELS)
    assert rank_loss("hinge", scores, labels, margin=2.0).item() == pytest.approx(1.0)
    assert rank_loss("ranknet", scores, labels).item() == pytest.approx(ranknet(scores, labels).item())
    with pytest.raises(ValueError, match="allowed: hinge, ranknet, listwise"):
        rank_loss("lambdarank", scores, labels)


def test_listwise_rejects_bad_temperature() -> None:
    with pytest.raises(ValueError, match="temperature must be > 0"):
        listwise_softmax_ce(torch.tensor(SCORES), torch.tensor(LABELS), temperature=0.0)
