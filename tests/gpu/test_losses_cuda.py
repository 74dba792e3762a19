"""The losses give the same values and gradients on CUDA (bf16 inputs included) as on the CPU."""

from __future__ import annotations

import pytest
import torch

from disranker.student.losses import hybrid_distill_loss
from disranker.teacher.losses import rank_loss

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", ["hinge", "ranknet", "listwise"])
def test_rank_losses_match_cpu(name):
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(8, 6, generator=generator)
    labels = torch.randint(0, 5, (8, 6), generator=generator)
    cpu = rank_loss(name, scores, labels)
    gpu = rank_loss(name, scores.cuda(), labels.cuda())
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-5)


def test_hybrid_distill_loss_matches_cpu_and_runs_in_bf16():
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(8, 6, generator=generator, requires_grad=True)
    teacher = torch.randn(8, 6, generator=generator)
    cpu = hybrid_distill_loss(student, teacher, margin_weight=0.5).total
    gpu_student = student.detach().cuda().requires_grad_()
    gpu = hybrid_distill_loss(gpu_student, teacher.cuda(), margin_weight=0.5).total
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-5)
    gpu.backward()
    assert gpu_student.grad.abs().sum() > 0
    bf16 = hybrid_distill_loss(student.detach().cuda().bfloat16(), teacher.cuda().bfloat16()).total
    assert torch.isfinite(bf16.float())
