"""Shared-prompt teacher scoring on CUDA: float32 equal to the CPU's plain scores; bfloat16 close to them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disranker.models.loading import load_teacher_scorer, score_pairs_teacher
from disranker.models.prefix_scoring import score_pairs_teacher_shared_prefix
from disranker.testing.tiny import build_tiny_teacher

pytestmark = pytest.mark.gpu

QUERIES = ["the dog", "the dog", "tree", "the dog", "tree", "a lone query"]
TITLES = ["dog", "cat", "a tree", "z", "", "t"]
SUMMARIES = ["the dog barked all night", "the cat sat", "", "q", "a tall plant with a trunk", "s"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shared_prompt_on_cuda_matches_plain_cpu_scores(dtype, tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = load_teacher_scorer(build_tiny_teacher(tmp_path / "teacher"))
    expected = score_pairs_teacher(model, tokenizer, QUERIES, TITLES, SUMMARIES)
    model.to(device="cuda", dtype=dtype)
    shared = score_pairs_teacher_shared_prefix(model, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=2)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2 * float(np.abs(expected).max())
    np.testing.assert_allclose(shared, expected, rtol=0, atol=tolerance)
