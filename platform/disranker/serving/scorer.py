"""The student as the endpoint uses it: loaded once per replica, encoding requests and scoring pairs.

``PairScorer`` is what a replica holds whatever the runtime: the tokenizer side (``encoder``: a request's pairs as
token ids and which documents are cut), the model's id and lineage, which runtime serves and why, and an abstract
``score_encoded``. Three siblings implement it: ``TorchScorer`` here (``models.loading.score_encoded_student``:
inference mode, length-sorted batches, the input order restored, so the endpoint's scores equal the ones evaluation
computes for the same folder), ``serving.onnx_runtime.OnnxScorer`` (the int8 ONNX graph) and
``serving.openvino_runtime.OpenVinoScorer``. A replica gets one from ``serving.runtime.load_scorer``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from disranker import lineage
from disranker.models.loading import load_student, resolve_model_dir, score_encoded_student
from disranker.models.text import encode_student
from disranker.serving.config import RankerArgs
from disranker.serving.pair_encoding import PairEncoder

# A bare encoder (packaged:minilm) gets a freshly initialised head: a fixed seed gives every replica the same one,
# so two replicas never rank the same request differently.
HEAD_SEED = 0


@dataclass(kw_only=True)
class PairScorer(ABC):
    tokenizer: Any
    model_id: str
    lineage: dict | None
    max_length: int
    forward_batch_size: int
    # Which runtime serves and, for onnx-int8, the agreement check's numbers and outcome (shown by /info).
    runtime: dict = field(default_factory=lambda: {"requested": "torch", "active": "torch"})
    # How many batches of the replica's queue may score at once: one, unless the runtime runs several forwards side by
    # side without the calls contending for the same threads (OpenVINO's streams, ``OpenVinoScorer``).
    concurrent_batches: ClassVar[int] = 1
    # The request's pairs as token ids (made in the request's thread) and a batch's input arrays.
    encoder: PairEncoder = field(init=False)

    def __post_init__(self) -> None:
        self.encoder = PairEncoder(self.tokenizer, self.max_length)

    def shared_fields(self) -> dict:
        """What a scorer of another runtime for the same student takes over from this one."""
        names = ("tokenizer", "model_id", "lineage", "max_length", "forward_batch_size")
        return {name: getattr(self, name) for name in names}

    def score(self, queries: Sequence[str], titles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """Raw logits (float32), one per pair, in input order; the pairs encoded as evaluation encodes them."""
        if not len(queries):
            return np.empty(0, dtype=np.float32)
        encoded = encode_student(self.tokenizer, queries, titles, summaries, self.max_length, return_tensors="np")
        return self.score_encoded(encoded)

    @abstractmethod
    def score_encoded(self, encoded: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw logits (float32), one per row of ``encoded`` (``encode_student``'s or ``PairEncoder.pad``'s arrays)."""


@dataclass(kw_only=True)
class TorchScorer(PairScorer):
    model: Any  # the student's torch module, in eval mode

    @classmethod
    def load(cls, args: RankerArgs) -> TorchScorer:
        torch.set_num_threads(args.threads())
        folder = resolve_model_dir(args.model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(HEAD_SEED)
            model, tokenizer = load_student(folder)
        model.eval()
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and args.max_length > positions:
            raise ValueError(
                f"max_length={args.max_length} is more tokens than {args.model} can read ({positions} positions): "
                f"set max_length to at most {positions}"
            )
        record = lineage.read_lineage(str(folder))
        return cls(
            model=model,
            tokenizer=tokenizer,
            model_id=f"{record['stage']}:{record['id']}" if record else args.model,
            lineage=record,
            max_length=args.max_length,
            forward_batch_size=args.forward_batch_size,
        )

    def score_encoded(self, encoded: Mapping[str, np.ndarray]) -> np.ndarray:
        return score_encoded_student(self.model, encoded, self.forward_batch_size)
