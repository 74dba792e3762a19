"""Student distillation losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from disranker.student.losses import (
    hybrid_distill_loss,
    listwise_kd,
    margin_mse,
    normalize_teacher_scores,
    pointwise_mse,
    sample_pairs,
)

# Errors e = s_S − s_T = [1, 0, −2]: squared [1, 0, 4]; margins (e_i − e_j)² over i < j: (0,1) 1, (0,2) 9, (1,2) 4.
STUDENT = [[1.0, 2.0, 3.0]]
TEACHER = [[0.0, 2.0, 5.0]]


def leaf(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, requires_grad=True)


def test_pointwise_mse_by_hand() -> None:
    assert pointwise_mse(leaf(STUDENT), torch.tensor(TEACHER)).item() == pytest.approx(5 / 3)


def test_margin_mse_by_hand() -> None:
    assert margin_mse(leaf(STUDENT), torch.tensor(TEACHER)).item() == pytest.approx(14 / 3)
    only_02 = torch.tensor([[0, 0, 2]])
    assert margin_mse(leaf(STUDENT), torch.tensor(TEACHER), pairs=only_02).item() == pytest.approx(9.0)


def test_margin_mse_ignores_per_group_constants() -> None:
    teacher = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    student = teacher + torch.tensor([[1.5], [-2.0], [7.0]])
    assert margin_mse(student, teacher).item() == pytest.approx(0.0, abs=1e-10)
    assert pointwise_mse(student, teacher).item() > 0


def test_hybrid_is_point_plus_weighted_margin() -> None:
    total, point, margin = hybrid_distill_loss(leaf(STUDENT), torch.tensor(TEACHER), margin_weight=0.5)
    assert (point.item(), margin.item()) == (pytest.approx(5 / 3), pytest.approx(14 / 3))
    assert total.item() == pytest.approx(5 / 3 + 0.5 * 14 / 3)


def test_listwise_kd_by_hand() -> None:
    # Teacher [0, ln 3] → p = [0.25, 0.75]; student [0, 0] → q = [0.5, 0.5]; −Σ p log q = ln 2.
    teacher = torch.tensor([[0.0, math.log(3.0)]])
    assert listwise_kd(leaf([[0.0, 0.0]]), teacher).item() == pytest.approx(math.log(2.0))
    # T = 2 with the teacher doubled gives the same p and q, times T² = 4.
    doubled = torch.tensor([[0.0, 2 * math.log(3.0)]])
    assert listwise_kd(leaf([[0.0, 0.0]]), doubled, temperature=2.0).item() == pytest.approx(4 * math.log(2.0))
    # Student = teacher leaves only the teacher entropy −(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351.
    assert listwise_kd(teacher.clone(), teacher).item() == pytest.approx(0.5623351, abs=1e-6)


def test_listwise_kd_skips_groups_under_two_docs() -> None:
    student = leaf([[0.0, 0.0], [4.0, 9.0]])
    teacher = torch.tensor([[0.0, math.log(3.0)], [1.0, -5.0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert listwise_kd(student, teacher, mask).item() == pytest.approx(math.log(2.0))


@pytest.mark.parametrize(
    "loss",
    [pointwise_mse, margin_mse, listwise_kd, lambda s, t, m: hybrid_distill_loss(s, t, m).total],
    ids=["pointwise", "margin", "listwise", "hybrid"],
)
def test_mask_ignores_padding(loss) -> None:
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    teacher = torch.tensor([[0.0, 2.0, 5.0, 1.0], [1.0, -1.0, 3.0, 3.0]])
    student = leaf([[1.0, 2.0, 3.0, -4.0], [0.5, 0.2, 6.0, 6.0]])
    other = leaf([[1.0, 2.0, 3.0, 90.0], [0.5, 0.2, float("nan"), float("-inf")]])
    base, changed = loss(student, teacher, mask), loss(other, teacher, mask)
    assert changed.item() == pytest.approx(base.item())
    changed.backward()
    assert other.grad.abs().sum() > 0
    assert torch.isfinite(other.grad).all() and (other.grad[~mask] == 0).all()


def test_padding_is_left_out_of_the_mean() -> None:
    # Same group as STUDENT/TEACHER plus one padded slot: the values must not change (5/3 and 14/3, not /4 or /6).
    mask = torch.tensor([[True, True, True, False]])
    student, teacher = leaf([[*STUDENT[0], 0.0]]), torch.tensor([[*TEACHER[0], 0.0]])
    assert pointwise_mse(student, teacher, mask).item() == pytest.approx(5 / 3)
    assert margin_mse(student, teacher, mask).item() == pytest.approx(14 / 3)


def test_gradient_flows() -> None:
    student = leaf(STUDENT)
    hybrid_distill_loss(student, torch.tensor(TEACHER)).total.backward()
    assert student.grad is not None and (student.grad != 0).all()


def test_sample_pairs_is_subset_with_right_count() -> None:
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False], [True] + [False] * 5])
    pairs = sample_pairs(mask, pairs_per_group=4, generator=torch.Generator().manual_seed(1))
    assert pairs.dtype == torch.long and pairs.shape == (4 + 3 + 0, 3)
    every = {(g, i, j) for g in range(3) for i in range(6) for j in range(i + 1, 6) if mask[g, i] and mask[g, j]}
    drawn = [tuple(row) for row in pairs.tolist()]
    assert len(set(drawn)) == len(drawn) and set(drawn) <= every
    assert [g for g, _, _ in drawn].count(1) == 3  # the 3-doc group has only 3 pairs: all of them
    again = sample_pairs(mask, pairs_per_group=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(pairs, again)


def test_all_sampled_pairs_match_default() -> None:
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    teacher = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    student = torch.randn(2, 4, generator=torch.Generator().manual_seed(3))
    pairs = sample_pairs(mask, pairs_per_group=100)
    assert pairs.shape == (6 + 3, 3)
    assert margin_mse(student, teacher, mask, pairs).item() == pytest.approx(margin_mse(student, teacher, mask).item())


def test_no_pairs_gives_zero_with_grad() -> None:
    student = leaf([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.zeros(2, 2)
    one_doc = torch.tensor([[True, False], [False, True]])
    for loss in (margin_mse(student, teacher, one_doc), margin_mse(student, teacher, pairs=sample_pairs(one_doc, 3))):
        assert loss.item() == 0.0 and loss.grad_fn is not None
        loss.backward()
        assert torch.equal(student.grad, torch.zeros(2, 2))


def test_bad_pairs_are_rejected() -> None:
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    with pytest.raises(ValueError, match=r"pairs has shape \(2,\)"):
        margin_mse(student, teacher, pairs=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside the"):
        margin_mse(student, teacher, pairs=torch.tensor([[0, 0, 3]]))
    with pytest.raises(ValueError, match="points at padding"):
        margin_mse(student, teacher, torch.tensor([[True, True, False]]), pairs=torch.tensor([[0, 0, 2]]))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"student has shape \(4, 8\) but teacher has shape \(4, 7\)"):
        hybrid_distill_loss(torch.zeros(4, 8), torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r"student has shape \(4, 8\) but mask has shape \(3, 8\)"):
        listwise_kd(torch.zeros(4, 8), torch.zeros(4, 8), torch.ones(3, 8, dtype=torch.bool))


def test_normalize_teacher_scores() -> None:
    teacher = torch.tensor([[1.0, 2.0, 3.0], [1.0, 3.0, 100.0], [4.0, 4.0, 4.0]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, True]])
    assert normalize_teacher_scores(teacher, mask) is teacher
    # Group 0: mean 2, population std sqrt(2/3) → ±sqrt(1.5) = ±1.2247449; group 1: mean 2, std 1 → ±1.
    z = normalize_teacher_scores(teacher, mask, "zscore_per_group")
    expected_z = torch.tensor([[-1.2247449, 0.0, 1.2247449], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(z, expected_z)
    minmax = normalize_teacher_scores(teacher, mask, "minmax_per_group")
    torch.testing.assert_close(minmax, torch.tensor([[0.0, 0.5, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="allowed: none, zscore_per_group, minmax_per_group"):
        normalize_teacher_scores(teacher, mask, "softmax")  # type: ignore[arg-type]
