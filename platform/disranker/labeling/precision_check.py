"""Which precision a labeling run scores in, decided once per run by the driver.

bf16 teacher weights on a CPU with ``avx512_bf16`` / AMX label ~2.5–3× faster than fp32 here, and a trained teacher
ranks alike (SmolLM2 SFT teacher, 800 dev pairs: Spearman 0.9993, NDCG@10 0.7164 vs 0.7161), but a teacher whose
scores lie close together does not (a seeded untrained head: Spearman 0.958). So on a CPU, bf16 (asked for, or
``auto`` on a CPU that multiplies bf16 natively) is used only after the driver has scored the pool's first
``CHECK_ROWS`` valid rows both ways with the transformers backend and found them to rank alike (Spearman ≥
``AGREEMENT_FLOOR``); otherwise the run scores in fp32 and says why. On a GPU, ``auto`` is bf16 without a check, as
GPU inference usually is. The decision goes into the labels' ``disranker.json`` and into the shard plan, so shards
scored in one precision are never mixed with shards of the other.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pyarrow.compute as pc
import torch
from scipy.stats import spearmanr

from disranker.labeling import shards as shard_plan
from disranker.labeling.config import LabelConfig
from disranker.models import precision

logger = logging.getLogger(__name__)

CHECK_ROWS = 256
AGREEMENT_FLOOR = 0.99


def decide(config: LabelConfig, first_shard: shard_plan.Shard | None) -> tuple[LabelConfig, dict]:
    """``config`` with ``scoring.precision`` set to the precision this run uses (fp32 or bf16), and the record of
    the decision: asked, used, and the check's Spearman and rows where one ran."""
    asked = config.scoring.precision
    record = {"asked": asked, "used": None, "spearman": None, "check_rows": 0, "reason": ""}
    if config.scaling.use_gpu:
        record["used"], record["reason"] = precision.resolve(asked, "cuda"), "GPU: no check"
    elif asked == "fp32" or (asked == "auto" and not precision.cpu_bf16_flags()):
        record["used"], record["reason"] = "fp32", "asked for fp32" if asked == "fp32" else "no bf16 in this CPU"
    elif first_shard is None:
        record["used"], record["reason"] = "fp32", "an empty pool: nothing to check bf16 on"
    elif config.scoring.backend != "transformers":
        record["used"], record["reason"] = "fp32", "bf16 on a CPU is checked with the transformers backend only"
    else:
        record.update(_check(config, first_shard))
    if record["used"] != asked:
        logger.info("labeling scores in %s (scoring.precision=%s): %s", record["used"], asked, record["reason"])
    scoring = dataclasses.replace(config.scoring, precision=record["used"])
    return dataclasses.replace(config, scoring=scoring), record


def _check(config: LabelConfig, first_shard: shard_plan.Shard) -> dict:
    from disranker.config import to_dict
    from disranker.labeling.backends import TransformersScorer

    rows = shard_plan.read_shard(first_shard.parts(CHECK_ROWS)[0].to_json())
    rows = rows.filter(pc.is_null(rows["_reason"]))
    texts = [rows[name].to_pylist() for name in ("query", "title", "summary")]
    if rows.num_rows < 3:
        return {"used": "fp32", "reason": f"only {rows.num_rows} valid rows to check bf16 on"}
    scores, threads = {}, torch.get_num_threads()
    try:  # the scorer sets the actors' thread count; the driver keeps its own
        for weights in ("fp32", "bf16"):
            scoring = to_dict(dataclasses.replace(config.scoring, precision=weights, torch_threads=threads))
            scores[weights] = TransformersScorer(to_dict(config.teacher), scoring, use_gpu=False).score(*texts)
    finally:
        torch.set_num_threads(threads)
    rho = float(spearmanr(scores["fp32"], scores["bf16"]).statistic)
    rho = rho if np.isfinite(rho) else 0.0  # constant scores rank nothing alike
    passed = rho >= AGREEMENT_FLOOR
    reason = f"bf16 ranks {'like' if passed else 'unlike'} fp32 (Spearman {rho:.4f}, floor {AGREEMENT_FLOOR})"
    return {"used": "bf16" if passed else "fp32", "spearman": rho, "check_rows": rows.num_rows, "reason": reason}
