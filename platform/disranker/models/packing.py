"""Packed teacher inputs for training: a query's prompt once, then each of its documents, in one row.

The training-side twin of ``models/prefix_scoring.py``. The teacher reads ``query: {query}\\n`` first and the document
after it with causal attention, so a query group of n documents run as n padded rows computes the prompt n times and
pads every row to the group's longest. A packed row holds the prompt once and then every document's remaining tokens
(title, summary, EOS) back to back, with no padding between them:

    row:       [ prompt | doc 1 … EOS | doc 2 … EOS | … ]
    positions:   0 … P-1  P … P+n1-1    P … P+n2-1        (each document continues right after the prompt)
    attention: a document's tokens see the prompt and the earlier tokens of their own document, nothing else

so each document's EOS hidden state, and the score read from it through the ``score`` layer, is the one the plain
row ``prompt + document + EOS`` gives (to float32 rounding; tests/unit/test_packing.py checks scores and gradients).

A document whose full token ids do not start with its prompt's ids (a tokenizer that merges across the newline, a
query cut by ``max_length``) rides in the same row as a *standalone* segment: its whole ids, positions from 0,
attending to itself only — the plain computation, just without padding. Rows hold up to ``row_tokens`` tokens:
small groups share a row, a group longer than that spans several rows, each repeating the prompt, because the dense
4-D mask makes attention cost grow with the square of the row (a 420-token row spends ~13 % of SmolLM2's FLOPs there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from disranker.models.prefix_scoring import supports_prefix_sharing

# Attention implementations that take a custom 4-D mask (flash-attention kernels ignore one, so they cannot pack).
MASKABLE_ATTENTION = ("sdpa", "eager")


def packing_unsupported_reason(model) -> str | None:
    """Why ``model`` cannot be trained on packed rows, or None when it can."""
    if not supports_prefix_sharing(model):
        return f"{type(model).__name__} has no `score` layer on a `base_model` to read each document's EOS from"
    attention = getattr(model.config, "_attn_implementation", None)
    if attention not in MASKABLE_ATTENTION:
        return f"attention implementation {attention!r} takes no 4-D mask (packing needs one of {MASKABLE_ATTENTION})"
    return None


@dataclass
class PackedRows:
    """Rows of packed query groups, ready for the model, and where each document's score is read.

    ``input_ids``/``position_ids`` are [rows, width]; ``attention_mask`` is [rows, 1, width, width] (bool, True =
    may attend); ``eos_index[d]`` is document d's EOS in the flattened [rows * width] positions, in input order."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    eos_index: torch.Tensor
    standalone: int  # documents that did not start with their prompt's ids and ran whole

    def to(self, device) -> PackedRows:
        moved = {k: getattr(self, k).to(device) for k in ("input_ids", "position_ids", "attention_mask", "eos_index")}
        return PackedRows(**moved, standalone=self.standalone)

    @property
    def tokens(self) -> int:
        """Token positions the model runs (padding included)."""
        return self.input_ids.numel()


def pack_groups(
    prompts: Sequence[list[int]], documents: Sequence[Sequence[list[int]]], row_tokens: int, pad_id: int
) -> PackedRows:
    """Pack ``documents[g]`` (each document's full token ids, prompt included) behind ``prompts[g]``.

    Rows are filled in order up to ``row_tokens``: several small groups share a row (each with its own prompt), a
    large one continues in the next row behind a copy of its prompt. Documents keep their input order in
    ``eos_index``: group 0's documents first, then group 1's, and so on."""
    rows: list[list[tuple[list[int], int, int | None]]] = []  # per row: (ids, first position, its prompt's segment)
    eos_at: list[tuple[int, int]] = []  # per document: (row, column of its EOS)
    used, standalone = row_tokens + 1, 0  # no open row yet
    for prompt, group in zip(prompts, documents, strict=True):
        prompt_segment = None  # the segment of this group's prompt in the open row
        for ids in group:
            shares = len(ids) > len(prompt) and ids[: len(prompt)] == prompt
            standalone += not shares
            tokens = ids[len(prompt) :] if shares else ids
            needed = len(tokens) + (len(prompt) if shares and prompt_segment is None else 0)
            if used + needed > row_tokens:
                rows.append([])
                used, prompt_segment = 0, None
            row = rows[-1]
            if shares and prompt_segment is None:
                row.append((prompt, 0, None))
                prompt_segment, used = len(row) - 1, used + len(prompt)
            row.append((tokens, len(prompt), prompt_segment) if shares else (ids, 0, None))
            used += len(tokens)
            eos_at.append((len(rows) - 1, used - 1))
    width = max(sum(len(ids) for ids, _, _ in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segment_of = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: padding
    prompt_of = torch.full((len(rows), width), -2, dtype=torch.long)  # the segment a token's prompt is in; -2: none
    for r, row in enumerate(rows):
        column = 0
        for s, (ids, first_position, prompt_segment) in enumerate(row):
            end = column + len(ids)
            input_ids[r, column:end] = torch.tensor(ids, dtype=torch.long)
            position_ids[r, column:end] = torch.arange(first_position, first_position + len(ids))
            segment_of[r, column:end] = s
            if prompt_segment is not None:
                prompt_of[r, column:end] = prompt_segment
            column = end
    eos_index = torch.tensor([r * width + c for r, c in eos_at], dtype=torch.long)
    return PackedRows(input_ids, position_ids, _attention_mask(segment_of, prompt_of), eos_index, standalone)


def _attention_mask(segment_of: torch.Tensor, prompt_of: torch.Tensor) -> torch.Tensor:
    """[rows, 1, width, width]: query i may attend key j ≤ i of its own segment or of its prompt's segment.

    A padding position attends to itself only: an all-masked row would make the softmax NaN, and nothing reads it."""
    query, key = segment_of.unsqueeze(2), segment_of.unsqueeze(1)
    width = segment_of.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    own = (query == key) & (query >= 0)
    prompt = prompt_of.unsqueeze(2) == key
    padding = (segment_of < 0).unsqueeze(2) & torch.eye(width, dtype=torch.bool)
    return (((own | prompt) & causal) | padding).unsqueeze(1)


def packed_scores(forward: Callable, model, packed: PackedRows) -> torch.Tensor:
    """One score per packed document (input order): ``forward`` runs the rows, the ``score`` layer's output is read at
    every EOS.

    ``forward`` is the model's own call (or the DDP / DeepSpeed wrapper around it: gradients are synchronised only
    for a forward through the wrapper). A sequence-classification forward returns one pooled logit per row, and a
    packed row holds many documents, so the per-position output of ``model.score`` is taken with a forward hook."""
    seen: list[torch.Tensor] = []
    hook = model.score.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        forward(
            input_ids=packed.input_ids,
            position_ids=packed.position_ids,
            attention_mask=_mask_for(model, packed.attention_mask),
            use_cache=False,
        )
    finally:
        hook.remove()
    per_position = seen[-1]
    return per_position.reshape(-1, per_position.shape[-1])[packed.eos_index, 0].float()


def _mask_for(model, mask: torch.Tensor) -> torch.Tensor:
    """SDPA takes the boolean mask as is; eager attention adds the mask to its scores, so it gets 0 / -inf floats."""
    if model.config._attn_implementation == "sdpa":
        return mask
    dtype = next(model.parameters()).dtype
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
