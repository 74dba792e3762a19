"""Query groups as tensors: a batch of ``[n_groups, group_size]`` scores/labels with a boolean padding mask.

Shared by the teacher's rank losses and the student's distillation losses (stages never import each other).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_groups(mask: Tensor | None, **tensors: Tensor) -> Tensor:
    """Check that every tensor is [n_groups, group_size] with one shape, and return the boolean mask (all True
    when ``mask`` is None). The first keyword names the reference tensor in error messages."""
    (first_name, first), *rest = tensors.items()
    if first.dim() != 2:
        raise ValueError(f"{first_name} has shape {tuple(first.shape)}: it must be 2-D [n_groups, group_size]")
    for name, tensor in [*rest, *([("mask", mask)] if mask is not None else [])]:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{first_name} has shape {tuple(first.shape)} but {name} has shape {tuple(tensor.shape)}: "
                "both must be [n_groups, group_size]"
            )
    if mask is None:
        return torch.ones_like(first, dtype=torch.bool)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask has dtype {mask.dtype}: it must be torch.bool (True = real doc, False = padding)")
    return mask


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` where ``keep`` is True; 0 (still carrying grad_fn) when nothing is kept.

    ``torch.where`` rather than boolean indexing keeps the shape static and avoids a host sync; its backward sends
    zero gradient to the dropped entries."""
    return torch.where(keep, values, 0.0).sum() / keep.sum().clamp_min(1)
