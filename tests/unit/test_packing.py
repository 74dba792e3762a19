"""Packed SFT rows (a query's prompt once, its documents behind it): the same scores and gradients as one padded row
per document, on the tiny teacher here and on the real SmolLM2-135M in tests/integration/test_packaged_models.py."""

from __future__ import annotations

import pytest
import torch

from disranker.models.loading import load_teacher_scorer
from disranker.models.packing import PackedRows, pack_groups, packed_scores, packing_unsupported_reason
from disranker.models.segment_attention import (
    Segment,
    SegmentLayout,
    segment_attention_forward,
    segment_layout,
)
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
        assert model.config._attn_implementation == attention  # segment attention for the packed forward only
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
    layout = PackedRows.from_batch(batch).segments
    real = (batch["input_ids"][0] != tokenizer.pad_token_id).nonzero().flatten().tolist()
    assert sorted(int(layout.query_index[layout.output_index[t]]) for t in real) == real  # each token its own slot


def keys_seen(layout: SegmentLayout, token: int) -> list[int]:
    """The flat positions that ``token`` attends to: its query slot's mask row over its bucket's key slots."""
    slot, q_at, k_at, m_at = int(layout.output_index[token]), 0, 0, 0
    for n, q_len, k_len in layout.shapes.tolist():
        if slot < q_at + n * q_len:
            segment, row = divmod(slot - q_at, q_len)
            mask = layout.mask[m_at : m_at + n * q_len * k_len].view(n, q_len, k_len)[segment, row]
            return sorted(layout.key_index[k_at + segment * k_len : k_at + (segment + 1) * k_len][mask].tolist())
        q_at, k_at, m_at = q_at + n * q_len, k_at + n * k_len, m_at + n * q_len * k_len
    raise AssertionError(f"token {token} has no query slot")


def test_rows_repeat_the_prompt_when_a_group_overflows_and_masks_keep_documents_apart():
    prompt = [1, 2]
    documents = [[1, 2, 10, 11, 99], [1, 2, 20, 99], [1, 2, 30, 31, 32, 99]]
    rows = pack_groups([prompt, [5]], [documents, [[5, 50, 99]]], row_tokens=9, pad_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 10, 11, 99, 20, 99, 0, 0], [1, 2, 30, 31, 32, 99, 5, 50, 99]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3, 0, 0], [0, 1, 2, 3, 4, 5, 0, 1, 2]]
    assert rows.eos_index.tolist() == [4, 6, 9 + 5, 9 + 8]
    assert keys_seen(rows.segments, 9 + 8) == [9 + 6, 9 + 7, 9 + 8]  # 2nd row's 2nd group: its own prompt
    assert keys_seen(rows.segments, 5) == [0, 1, 5]  # doc 2's first token: the prompt and itself, not doc 1
    assert keys_seen(rows.segments, 1) == [0, 1]  # the prompt is causal
    assert keys_seen(rows.segments, 4) == [0, 1, 2, 3, 4]
    real_queries = rows.segments.query_index[rows.segments.output_index[[0, 1, 2, 3, 4, 5, 6]]].tolist()
    assert real_queries == [0, 1, 2, 3, 4, 5, 6]  # the row's padding (columns 7, 8) is no segment's query
    assert rows.standalone == 0


def test_segments_of_like_length_share_a_bucket_and_a_long_one_runs_alone():
    lengths, tokens = [3, 2, 40, 3], 60
    starts = [0, 3, 5, 45]
    segments = [Segment(own=range(a, a + n)) for a, n in zip(starts, lengths, strict=True)]
    layout = segment_layout(segments, tokens)
    assert layout.shapes.tolist() == [[1, 2, 2], [2, 3, 3], [1, 40, 40]]  # [2, 3] would pad 18 slots for 13
    assert layout.mask.numel() == 2 * 2 + 2 * 3 * 3 + 40 * 40
    assert keys_seen(layout, 44) == list(range(5, 45))  # the long segment's last token: all of it, causally
    covered = 3 + 2 + 40 + 3
    assert layout.query_index[layout.output_index[:covered]].tolist() == list(range(covered))


def test_a_document_that_does_not_start_with_the_prompt_sees_only_itself():
    rows = pack_groups([[1, 2]], [[[1, 2, 10, 99], [1, 7, 11, 99]]], row_tokens=64, pad_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 10, 99, 1, 7, 11, 99]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]]
    assert keys_seen(rows.segments, 7) == [4, 5, 6, 7]
    assert rows.standalone == 1


def test_models_that_cannot_pack_say_why_and_windowed_attention_is_refused(teacher):
    model, tokenizer = teacher
    assert packing_unsupported_reason(model) is None
    assert "no `score` layer" in packing_unsupported_reason(torch.nn.Linear(2, 2))
    rows = PackedRows.from_batch(data.collate_groups_packed(GROUPS, tokenizer, MAX_LENGTH, GROUP_SIZE, 512))
    states = torch.randn(1, 1, rows.input_ids.shape[1], 4)
    longest = int(rows.segments.shapes[:, 2].max())
    unwindowed, _ = segment_attention_forward(model, states, states, states, None, segments=rows.segments)
    windowed, _ = segment_attention_forward(
        model, states, states, states, None, segments=rows.segments, sliding_window=longest
    )
    assert torch.equal(windowed, unwindowed)  # a window every segment fits in changes nothing
    with pytest.raises(ValueError, match=f"{longest} keys, more than the sliding window of {longest - 1}"):
        segment_attention_forward(
            model, states, states, states, None, segments=rows.segments, sliding_window=longest - 1
        )
    with pytest.raises(ValueError, match="soft-capping"):
        segment_attention_forward(model, states, states, states, None, segments=rows.segments, softcap=50.0)
    model.config.attn_logit_softcapping = 50.0
    try:
        assert "soft-caps its attention logits" in packing_unsupported_reason(model)
    finally:
        del model.config.attn_logit_softcapping
    with pytest.raises(ValueError, match="`segments` layout"):
        segment_attention_forward(model, states, states, states, None)
    assert packed_scores(model, model, rows).shape == (len(rows.eos_index),)


def test_bf16_autocast_attends_in_float32_on_cpu():
    layout = segment_layout([Segment(own=range(0, 2)), Segment(own=range(2, 6), prompt=range(0, 2))], tokens=6)
    q, k, v = torch.randn(3, 1, 2, 6, 4).bfloat16().unbind(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = segment_attention_forward(None, q, k, v, None, segments=layout)
    want, _ = segment_attention_forward(None, q.float(), k.float(), v.float(), None, segments=layout)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want.bfloat16())


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
