"""Packed SFT rows (a query's prompt once, its documents behind it): the same scores and gradients as one padded row
per document, on the tiny teacher here and on the real SmolLM2-135M in tests/integration/test_packaged_models.py."""

from __future__ import annotations

import pytest
import torch

from disranker.models.loading import load_teacher_scorer
from disranker.models.packing import pack_groups, packing_unsupported_reason
from disranker.teacher import data
from disranker.testing.tiny import build_tiny_teacher

# Three groups: documents of very different lengths (one cut at max_length=48), an empty summary, and a query so long
# that max_length cuts it: its documents do not start with the prompt's ids and run as standalone segments.
LONG_QUERY = "the dog barked at the cat in the house all night " * 6
GROUPS = [
    data.QueryGroup(
        "a small dog that barks", ["dog", "cat", "tree"], ["the dog barks", "a cat sat " * 20, ""], [4, 1, 0]
    ),
    data.QueryGroup("grind with a sandblast", ["sandblast", "stone"], ["sandblast the wall", "a hard rock"], [3, 0]),
    data.QueryGroup(LONG_QUERY, ["dog", "cat"], ["a dog", "a cat"], [2, 0]),
]
GROUP_SIZE, MAX_LENGTH = 3, 48


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a seeded fresh score head: scores far apart and reproducible
        model, tokenizer = load_teacher_scorer(build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny"))
    return model.train(), tokenizer


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("row_tokens", [512, 48])
def test_packed_groups_give_the_plain_scores_and_gradients(teacher, packed_and_plain, attention, row_tokens):
    model, tokenizer = teacher
    model.config._attn_implementation = attention
    try:
        (want_scores, want_grads), (got_scores, got_grads), batch = packed_and_plain(
            model, tokenizer, GROUPS, MAX_LENGTH, row_tokens
        )
    finally:
        model.config._attn_implementation = "sdpa"
    torch.testing.assert_close(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    assert want_grads.keys() == got_grads.keys() and "score.weight" in got_grads
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert int(batch["standalone"]) == 2  # the cut query's two documents
    rows, width = batch["input_ids"].shape
    assert width <= row_tokens and (rows == 1) == (row_tokens == 512)  # 48 tokens hold one or two documents


def test_groups_share_rows_and_run_fewer_tokens_than_padded_rows(teacher):
    _, tokenizer = teacher
    plain = data.collate_groups(GROUPS, tokenizer, MAX_LENGTH, GROUP_SIZE)
    batch = data.collate_groups_packed(GROUPS, tokenizer, MAX_LENGTH, GROUP_SIZE, row_tokens=512)
    assert batch["input_ids"].shape[0] == 1  # all three groups fit one 512-token row
    assert batch["input_ids"].numel() < plain["input_ids"].numel()
    assert int(batch["attention_mask"].shape[-1]) == batch["input_ids"].shape[1]


def test_rows_repeat_the_prompt_when_a_group_overflows_and_masks_keep_documents_apart():
    prompt = [1, 2]
    documents = [[1, 2, 10, 11, 99], [1, 2, 20, 99], [1, 2, 30, 31, 32, 99]]
    rows = pack_groups([prompt, [5]], [documents, [[5, 50, 99]]], row_tokens=9, pad_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 10, 11, 99, 20, 99, 0, 0], [1, 2, 30, 31, 32, 99, 5, 50, 99]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3, 0, 0], [0, 1, 2, 3, 4, 5, 0, 1, 2]]
    assert rows.eos_index.tolist() == [4, 6, 9 + 5, 9 + 8]
    assert rows.attention_mask[1, 0, 8].int().tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]  # 2nd group: its own prompt
    mask = rows.attention_mask[0, 0].int()
    assert mask[5].tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0]  # doc 2's first token: the prompt and itself, not doc 1
    assert mask[1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0]  # the prompt is causal
    assert mask[7].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]  # padding sees only itself
    assert rows.standalone == 0


def test_a_document_that_does_not_start_with_the_prompt_sees_only_itself():
    rows = pack_groups([[1, 2]], [[[1, 2, 10, 99], [1, 7, 11, 99]]], row_tokens=64, pad_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 10, 99, 1, 7, 11, 99]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]]
    assert rows.attention_mask[0, 0, 7].int().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert rows.standalone == 1


def test_models_that_cannot_pack_say_why(teacher):
    model, _ = teacher
    assert packing_unsupported_reason(model) is None
    model.config._attn_implementation = "flash_attention_2"
    try:
        assert "takes no 4-D mask" in packing_unsupported_reason(model)
    finally:
        model.config._attn_implementation = "sdpa"
    assert "no `score` layer" in packing_unsupported_reason(torch.nn.Linear(2, 2))


def test_cpt_batches_are_length_sorted_and_cut_back_exactly():
    import numpy as np

    examples = [{"input_ids": [0] * n} for n in np.random.default_rng(0).integers(3, 60, size=23)]
    bucketed = data.length_bucketed(examples, 4, np.random.default_rng(1))
    assert sorted(map(id, bucketed)) == sorted(map(id, examples))  # a permutation: nothing lost or repeated
    batches = [bucketed[i : i + 4] for i in range(0, len(bucketed), 4)]
    assert all(len(b) == 4 for b in batches[:-1]) and len(batches[-1]) == 3
    padded = sum(len(b) * max(len(e["input_ids"]) for e in b) for b in batches)
    unsorted = sum(len(b) * max(len(e["input_ids"]) for e in b) for b in [examples[i : i + 4] for i in range(0, 23, 4)])
    assert padded < unsorted
