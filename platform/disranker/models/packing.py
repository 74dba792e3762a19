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
small groups share a row, a group longer than that spans several rows, each repeating the prompt. Attention runs per
segment (``models.segment_attention``), over the keys each one may see, not over the whole row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch

from disranker.models.prefix_scoring import supports_prefix_sharing
from disranker.models.segment_attention import Segment, SegmentLayout, attention_by_segments, segment_layout


def packing_unsupported_reason(model) -> str | None:
    """Why ``model`` cannot be trained on packed rows, or None when it can."""
    if not supports_prefix_sharing(model):
        return f"{type(model).__name__} has no `score` layer on a `base_model` to read each document's EOS from"
    if getattr(model.config, "attn_logit_softcapping", None) is not None:  # Gemma 2: segment attention has no cap
        return f"{type(model).__name__} soft-caps its attention logits, which packed segment attention does not"
    return None


@dataclass
class PackedRows:
    """Rows of packed query groups, ready for the model, and where each document's score is read.

    ``input_ids``/``position_ids`` are [rows, width]; ``segments`` says which keys each token attends to
    (``models.segment_attention``); ``eos_index[d]`` is document d's EOS in the flattened [rows * width] positions, in
    input order."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segments: SegmentLayout
    eos_index: torch.Tensor
    standalone: int  # documents that did not start with their prompt's ids and ran whole

    def as_batch(self) -> dict[str, torch.Tensor]:
        """Tensors only (a training batch is moved to its device key by key); ``from_batch`` reads them back."""
        layout = {f"segment_{f.name}": getattr(self.segments, f.name) for f in fields(SegmentLayout)}
        rows = {"input_ids": self.input_ids, "position_ids": self.position_ids, "eos_index": self.eos_index}
        return {**rows, **layout, "standalone": torch.tensor(self.standalone)}

    @classmethod
    def from_batch(cls, batch: dict[str, torch.Tensor]) -> PackedRows:
        layout = SegmentLayout(**{f.name: batch[f"segment_{f.name}"] for f in fields(SegmentLayout)})
        rows = {key: batch[key] for key in ("input_ids", "position_ids", "eos_index")}
        return cls(**rows, segments=layout, standalone=int(batch["standalone"]))

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
    segments: list[Segment] = []
    for r, row in enumerate(rows):
        starts = [r * width + sum(len(ids) for ids, _, _ in row[:s]) for s in range(len(row))]
        for s, (ids, first_position, prompt_segment) in enumerate(row):
            column = starts[s] - r * width
            input_ids[r, column : column + len(ids)] = torch.tensor(ids, dtype=torch.long)
            position_ids[r, column : column + len(ids)] = torch.arange(first_position, first_position + len(ids))
            if prompt_segment is None:
                prompt = ()
            else:
                prompt = range(starts[prompt_segment], starts[prompt_segment] + len(row[prompt_segment][0]))
            segments.append(Segment(own=range(starts[s], starts[s] + len(ids)), prompt=prompt))
    eos_index = torch.tensor([r * width + c for r, c in eos_at], dtype=torch.long)
    layout = segment_layout(segments, tokens=len(rows) * width)
    return PackedRows(input_ids, position_ids, layout, eos_index, standalone)


def packed_scores(forward: Callable, model, packed: PackedRows) -> torch.Tensor:
    """One score per packed document (input order): ``forward`` runs the rows, the ``score`` layer's output is read at
    every EOS.

    ``forward`` is the model's own call (or the DDP / DeepSpeed wrapper around it: gradients are synchronised only
    for a forward through the wrapper). A sequence-classification forward returns one pooled logit per row, and a
    packed row holds many documents, so the per-position output of ``model.score`` is taken with a forward hook."""
    seen: list[torch.Tensor] = []
    # every layer reads the buckets' shapes: from host memory, so that a GPU is not synchronised once per layer
    segments = replace(packed.segments, shapes=packed.segments.shapes.cpu())
    hook = model.score.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        with attention_by_segments(model):
            forward(input_ids=packed.input_ids, position_ids=packed.position_ids, segments=segments, use_cache=False)
    finally:
        hook.remove()
    per_position = seen[-1]
    return per_position.reshape(-1, per_position.shape[-1])[packed.eos_index, 0].float()
