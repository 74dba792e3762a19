"""The student as the endpoint uses it: loaded once per replica, scoring pairs, and telling which documents it cut.

``PairScorer`` is what a replica holds whatever the runtime: the tokenizer side (which documents are cut, the
model's id and lineage, which runtime serves and why) and an abstract ``score``. Two siblings implement it:
``TorchScorer`` here (``disranker.models.loading.score_pairs_student``: inference mode, length-sorted batches, the
input order restored, so the endpoint's scores equal the ones evaluation computes for the same folder),
``serving.onnx_runtime.OnnxScorer`` (the int8 ONNX graph) and ``serving.openvino_runtime.OpenVinoScorer``. A replica
gets one from ``serving.runtime.load_scorer``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from disranker import lineage
from disranker.models.loading import load_student, resolve_model_dir, score_pairs_student
from disranker.models.text import student_document
from disranker.serving.config import RankerArgs
from disranker.serving.schemas import RequestError

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
    pair_specials: int = field(init=False)  # [CLS] q [SEP] d [SEP] → 3 for BERT
    # ``truncated`` runs in request threads while batches score in another: a fast tokenizer's truncation setting is
    # state that each call sets, so the two must not share one (seen: pairs longer than max_length under load).
    length_tokenizer: Any = field(init=False)

    def __post_init__(self) -> None:
        self.pair_specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        self.length_tokenizer = copy.deepcopy(self.tokenizer)

    def shared_fields(self) -> dict:
        """What a scorer of another runtime for the same student takes over from this one."""
        names = ("tokenizer", "model_id", "lineage", "max_length", "forward_batch_size")
        return {name: getattr(self, name) for name in names}

    def truncated(self, query: str, titles: Sequence[str], summaries: Sequence[str]) -> list[bool]:
        """Which documents do not fit beside the query in ``max_length`` tokens (they are cut, the query never is).

        Raises a 422 ``RequestError`` on ``query`` when the query alone leaves no room for a document."""
        query_tokens = len(self.length_tokenizer(query, add_special_tokens=False)["input_ids"])
        room = self.max_length - self.pair_specials - query_tokens
        if room < 1:
            raise RequestError(
                422, "query", f"the query is {query_tokens} tokens; the model reads {self.max_length} per pair"
            )
        documents = [student_document(t, s) for t, s in zip(titles, summaries, strict=True)]
        lengths = [len(ids) for ids in self.length_tokenizer(documents, add_special_tokens=False)["input_ids"]]
        return [n > room for n in lengths]

    @abstractmethod
    def score(self, queries: Sequence[str], titles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """Raw logits (float32), one per pair, in input order."""

    def _score_with(self, score_pairs, runner, queries, titles, summaries) -> np.ndarray:
        """A ``models.loading``-style scoring function on ``runner`` (a module or a session) at this scorer's sizes."""
        return score_pairs(runner, self.tokenizer, queries, titles, summaries,
                           batch_size=self.forward_batch_size, max_length=self.max_length)  # fmt: skip


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

    def score(self, queries: Sequence[str], titles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        return self._score_with(score_pairs_student, self.model, queries, titles, summaries)
