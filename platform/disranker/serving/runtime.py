"""Which runtime a replica serves: the torch student, or its int8 ONNX graph once it has been checked against torch."""

from __future__ import annotations

from disranker.serving.config import RankerArgs
from disranker.serving.scorer import PairScorer, TorchScorer


def load_scorer(args: RankerArgs) -> PairScorer:
    """The replica's scorer for ``args.runtime``: the torch student, or its int8 ONNX graph once checked against it
    (``serving.onnx_runtime``)."""
    scorer = TorchScorer.load(args)
    if args.runtime == "torch":
        return scorer
    from disranker.serving.onnx_runtime import load_checked_scorer  # needs the optional `onnx` extra

    return load_checked_scorer(scorer, args)
