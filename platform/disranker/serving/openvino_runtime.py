"""``runtime: openvino`` and ``openvino-int8``: the student compiled by OpenVINO for this CPU
(``models.openvino_export``).

``openvino`` computes in the CPU's fastest supported precision (bfloat16 on CPUs with AMX or AVX-512 BF16, float32
elsewhere); ``openvino-int8`` runs int8 weights and activations, calibrated on the student's own training pairs
(``agreement.calibration_set``). Either is served only when it passes the agreement check at replica start
(``serving.runtime``); /info shows the precision and the calibration source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from disranker.models.openvino_export import compile_student, openvino_student, score_encoded_openvino
from disranker.serving.agreement import calibration_set
from disranker.serving.config import RankerArgs
from disranker.serving.onnx_runtime import cache_name
from disranker.serving.scorer import PairScorer, TorchScorer


@dataclass(kw_only=True)
class OpenVinoScorer(PairScorer):
    """The student as an OpenVINO compiled model (the torch weights are released once the check has passed)."""

    compiled: Any
    # A batch's forwards are spread over the streams, and its last forward leaves a stream idle unless the next batch
    # may start meanwhile; the streams queue whatever is sent. benchmarks/serve_load.py, openvino only, 64 requests a
    # level, rounds interleaved, 2-core AMX Xeon: 1 → 685 / 646 pairs/s, 2 → 744 / 688 / 714 / 733, 4 → 774 / 731 /
    # 751 / 745, 8 → 755 / 725; again once requests were tokenised in their own threads: 1 → 679 / 659, 4 → 696 / 742.
    # The other runtimes keep one: ONNX Runtime's calls share one thread pool
    # (its int8 endpoint fell from 372 to 319 pairs/s at 4), torch's forwards contend for its OpenMP threads (220
    # against 205 pairs/s, but 441 against 396 CPU ms a request: within the noise, at a cost).
    concurrent_batches: ClassVar[int] = 4

    def score_encoded(self, encoded: Mapping[str, np.ndarray]) -> np.ndarray:
        return score_encoded_openvino(self.compiled, encoded, self.forward_batch_size)


def build(torch_scorer: TorchScorer, args: RankerArgs) -> tuple[OpenVinoScorer, dict]:
    """``torch_scorer``'s model compiled by OpenVINO (int8 when ``args.runtime`` says so), and what /info reports."""
    report = {}
    calibration = None
    if args.runtime == "openvino-int8":
        calibration, report["calibration"] = calibration_set(args, torch_scorer.lineage)
    path = openvino_student(
        torch_scorer.model,
        torch_scorer.tokenizer,
        name=cache_name(torch_scorer.model_id),
        cache_root=args.check.cache_dir and f"{args.check.cache_dir}/openvino",
        onnx_cache_root=args.check.cache_dir,
        calibration=calibration,
        max_length=args.max_length,
    )
    compiled, precision = compile_student(path, args.threads())
    scorer = OpenVinoScorer(**torch_scorer.shared_fields(), compiled=compiled)
    return scorer, {"openvino_file": str(path), "inference_precision": precision, **report}
