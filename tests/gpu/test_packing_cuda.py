"""Packed SFT rows on CUDA: the same scores and gradients as one padded row per document (segment attention)."""

from __future__ import annotations

import pytest
import torch

from disranker.models.loading import load_teacher_scorer
from disranker.teacher.data import QueryGroup
from disranker.testing.tiny import build_tiny_teacher

pytestmark = pytest.mark.gpu

GROUPS = [
    QueryGroup("a small dog that barks", ["dog", "cat", "tree"], ["the dog barked", "a cat sat " * 20, ""], [4, 1, 0]),
    QueryGroup("grind with a sandblast", ["sandblast", "stone"], ["sandblast the wall", "a hard rock"], [3, 0]),
]


def test_packed_groups_on_cuda_give_the_plain_scores_and_gradients(tmp_path, packed_and_plain):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = load_teacher_scorer(build_tiny_teacher(tmp_path / "teacher"))
    model.to("cuda").train()
    (want_scores, want_grads), (got_scores, got_grads), _ = packed_and_plain(model, tokenizer, GROUPS, 48, 512)
    torch.testing.assert_close(got_scores, want_scores, rtol=1e-4, atol=1e-4)
    for name, grad in want_grads.items():
        assert (got_grads[name] - grad).abs().max() <= 1e-3 * grad.abs().max() + 1e-6, name
