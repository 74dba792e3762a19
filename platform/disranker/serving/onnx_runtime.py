"""``runtime: onnx-int8``: the student's int8 ONNX graph in ONNX Runtime (``models.onnx_export``: exported once per
machine and cached, MatMul weights quantised to int8 per output channel, activations per batch at run time).

``build`` is what ``serving.runtime`` calls at replica start; the replica serves the graph only when it passes the
agreement check there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from disranker.models.onnx_export import int8_student, open_session, score_encoded_onnx
from disranker.serving.config import RankerArgs
from disranker.serving.scorer import PairScorer, TorchScorer


@dataclass(kw_only=True)
class OnnxScorer(PairScorer):
    """The student as an ONNX Runtime session (the torch weights are released once the check has passed)."""

    session: Any

    def score_encoded(self, encoded: Mapping[str, np.ndarray]) -> np.ndarray:
        return score_encoded_onnx(self.session, encoded, self.forward_batch_size)


def cache_name(model_id: str) -> str:
    """A readable folder name for the exported files of ``model_id`` (the cache key is the weights' hash)."""
    return re.sub(r"[^\w.-]+", "-", model_id.rstrip("/").rsplit("/", 1)[-1])


def build(torch_scorer: TorchScorer, args: RankerArgs) -> tuple[OnnxScorer, dict]:
    """The int8 graph of ``torch_scorer``'s model as a scorer, and what /info reports about it."""
    model, tokenizer = torch_scorer.model, torch_scorer.tokenizer
    path = int8_student(model, tokenizer, name=cache_name(torch_scorer.model_id), cache_root=args.check.cache_dir)
    scorer = OnnxScorer(**torch_scorer.shared_fields(), session=open_session(path, args.threads()))
    return scorer, {"onnx_file": str(path)}
