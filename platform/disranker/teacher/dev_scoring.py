"""Dev scoring inside teacher SFT: every dev pair scored by the model being trained, and the metrics that pick the
best epoch (PNR, NDCG@10)."""

from __future__ import annotations

import numpy as np

from disranker.evaluation import metrics
from disranker.models.text import pair_texts
from disranker.teacher.config import TeacherConfig
from disranker.training.loop import score_in_slices


def score_dev(config: TeacherConfig, backend, tokenizer, dev, rank: int, world: int) -> np.ndarray:
    """Scores of every dev pair; each rank scores an equal-size slice. Each query's prompt runs once, except under
    ZeRO-3, which needs every rank in every forward: there the plain scorer's forward count is the same on all ranks."""
    from disranker.models.loading import score_pairs_teacher
    from disranker.models.prefix_scoring import score_pairs_teacher_shared_prefix

    scorer = score_pairs_teacher if getattr(backend, "zero3", False) else score_pairs_teacher_shared_prefix

    def score(part):
        texts = pair_texts(part)
        return scorer(backend.module, tokenizer, *texts, config.training.eval_batch_size, config.training.max_length)

    return score_in_slices(score, dev, rank, world)


def dev_metrics(dev, scores: np.ndarray) -> dict:
    query_ids = np.asarray(dev["query_id"].to_pylist(), dtype=object)
    labels = dev["label"].to_numpy()
    return {
        "pnr": metrics.pnr(query_ids, labels, scores),
        "ndcg@10": metrics.ndcg_at_k(query_ids, labels, scores, k=10),
    }
