"""Attention for packed teacher rows that computes only the scores a document may use: its prompt's and its own.

A packed row (``models.packing``) holds prompts and documents side by side, and a document's tokens attend to its
prompt and to the earlier tokens of their own document. A dense [width × width] mask gives SDPA that pattern but makes
it compute every pair of the row and throw most away: on 384-token rows of the demo's query groups 6 % of the scores
are kept, and that attention took 15 % of an SFT step's time (SmolLM2-135M, fp32, 2-core Xeon with AMX). Here it
computes 11 % of the dense pairs (bucket padding and the causal half included) and takes ~5 % of the step.

Here the row is cut into *segments* (a prompt, a document behind its prompt, or a document that runs whole). A
segment's queries are its own tokens, its keys its prompt's tokens and then its own; segments of similar length are
padded together into a few buckets and each bucket is one SDPA call with a small mask (every prompt key, causal among
its own keys). The softmax runs over exactly the keys the dense mask leaves, so scores and gradients equal the dense
path's to float rounding (tests/unit/test_packing.py). The layout is made once per batch (``segment_layout``, in the
data loader) and used by every layer.

The model keeps its own attention everywhere else: ``attention_by_segments`` switches it to this function for a
packed forward only, through transformers' attention registry (the autograd graph keeps the function for backward).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv

ATTENTION_NAME = "disranker_segments"
# A bucket takes the next (longer) segment while its padded area stays within this factor of the area it needs: the
# demo's SFT steps come out at 5-6 buckets, one SDPA call each per layer, few enough that the calls cost little.
BUCKET_SLACK = 1.3


@dataclass
class Segment:
    """Flat token positions (``row * width + column``) of a segment's own tokens and of the prompt before them."""

    own: Sequence[int]
    prompt: Sequence[int] = ()


@dataclass
class SegmentLayout:
    """Where each bucket's query and key slots come from (flat token positions), flattened over buckets.

    ``shapes[b]`` is bucket b's (segments, query slots, key slots); ``mask`` its [segments, queries, keys] booleans,
    flattened and concatenated; ``output_index[t]`` is the query slot whose output token t takes."""

    query_index: torch.Tensor
    key_index: torch.Tensor
    mask: torch.Tensor
    shapes: torch.Tensor  # [buckets, 3], long
    output_index: torch.Tensor


def segment_layout(segments: Sequence[Segment], tokens: int) -> SegmentLayout:
    """The buckets for ``segments`` of rows holding ``tokens`` positions in all.

    Padding slots read position 0, and row padding reads query slot 0: a copy whose output nothing uses, so its
    gradient is zero (a padding query attends to its segment's first key only, and every other query masks padding
    keys out), which saves appending a zero row to every layer's queries, keys and values."""
    ordered = sorted(segments, key=lambda s: (len(s.prompt) + len(s.own), len(s.own)))
    buckets: list[list[Segment]] = []
    for segment in ordered:
        bucket = buckets[-1] if buckets else None
        if bucket is None or _padded_area([*bucket, segment]) > BUCKET_SLACK * _needed_area([*bucket, segment]):
            buckets.append([segment])
        else:
            bucket.append(segment)
    query_index, key_index, masks, shapes = [], [], [], []
    output_index = torch.full((tokens,), -1, dtype=torch.long)
    for bucket in buckets:
        queries = max(len(s.own) for s in bucket)
        keys = max(len(s.prompt) + len(s.own) for s in bucket)
        mask = torch.zeros(len(bucket), queries, keys, dtype=torch.bool)
        for i, segment in enumerate(bucket):
            own, prompt = list(segment.own), list(segment.prompt)
            first_slot = len(query_index)
            output_index[own] = torch.arange(first_slot, first_slot + len(own))
            query_index += own + [0] * (queries - len(own))
            key_index += prompt + own + [0] * (keys - len(prompt) - len(own))
            # query i sees the prompt and own keys up to itself; a padding query sees one key, so no softmax is empty
            mask[i, : len(own)] = torch.ones(len(own), keys, dtype=torch.bool).tril(len(prompt))
            mask[i, len(own) :, 0] = True
        masks.append(mask.flatten())
        shapes.append((len(bucket), queries, keys))
    output_index[output_index < 0] = 0
    return SegmentLayout(
        query_index=torch.tensor(query_index, dtype=torch.long),
        key_index=torch.tensor(key_index, dtype=torch.long),
        mask=torch.cat(masks),
        shapes=torch.tensor(shapes, dtype=torch.long).reshape(-1, 3),
        output_index=output_index,
    )


def _padded_area(bucket: list[Segment]) -> int:
    return len(bucket) * max(len(s.own) for s in bucket) * max(len(s.prompt) + len(s.own) for s in bucket)


def _needed_area(bucket: list[Segment]) -> int:
    return sum(len(s.own) * (len(s.prompt) + len(s.own)) for s in bucket)


def segment_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    segments: SegmentLayout | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``query`` [rows, heads, width, dim], ``key``/``value`` [rows,
    kv heads, width, dim]; returns [rows, width, heads, dim]."""
    if segments is None:
        raise ValueError(f"attention {ATTENTION_NAME!r} needs the packed rows' `segments` layout")
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        raise ValueError("segment attention has no logit soft-capping or attention sinks; train this model unpacked")
    # A sliding window (Gemma 3's local layers, Mistral) changes nothing while every segment's keys fit in it.
    window, longest = kwargs.get("sliding_window"), int(segments.shapes[:, 2].max())
    if window is not None and longest > window:
        raise ValueError(f"a segment has {longest} keys, more than the sliding window of {window}: train unpacked")
    rows, heads, width, dim = query.shape
    groups = heads // key.shape[1]
    # On CPU attention runs in float32 whatever the autocast: torch's bf16 SDPA backward on buckets this small took a
    # quarter of a packed bf16 step, 8× its float32 time (SmolLM2-135M, 2-core Xeon with AMX). GPUs keep bf16.
    in_float32 = query.device.type == "cpu"

    def slots(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # [slots, heads, dim]
        # index_select, not x[index]: its backward is an index_add, several times faster than index_put's on CPU
        states = states.transpose(1, 2).reshape(rows * width, states.shape[1], dim).index_select(0, index)
        return states.float() if in_float32 else states

    queries = slots(query, segments.query_index)
    keys, values = slots(key, segments.key_index), slots(value, segments.key_index)
    outputs, q_at, k_at, m_at = [], 0, 0, 0
    for n, q_len, k_len in segments.shapes.tolist():
        q = queries[q_at : q_at + n * q_len].view(n, q_len, heads, dim).transpose(1, 2)
        k = repeat_kv(keys[k_at : k_at + n * k_len].view(n, k_len, -1, dim).transpose(1, 2), groups)
        v = repeat_kv(values[k_at : k_at + n * k_len].view(n, k_len, -1, dim).transpose(1, 2), groups)
        mask = segments.mask[m_at : m_at + n * q_len * k_len].view(n, 1, q_len, k_len)
        with torch.autocast("cpu", enabled=False) if in_float32 else nullcontext():
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout_p=dropout, scale=scaling)
        outputs.append(out.transpose(1, 2).reshape(n * q_len, heads, dim))
        q_at, k_at, m_at = q_at + n * q_len, k_at + n * k_len, m_at + n * q_len * k_len
    attended = torch.cat(outputs).index_select(0, segments.output_index).to(value.dtype)
    return attended.view(rows, width, heads, dim), None


@contextmanager
def attention_by_segments(model) -> Iterator[None]:
    """``model``'s attention layers call ``segment_attention_forward`` within the block, their own after it."""
    AttentionInterface.register(ATTENTION_NAME, segment_attention_forward)
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = before
