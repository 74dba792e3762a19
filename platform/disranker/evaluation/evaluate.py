"""The evaluation stage: join a judgments table with a scores table and compute the ranking metrics.

``run(EvaluateConfig(judgments=..., scores=..., output_dir=...))`` writes ``metrics.json``, ``rejected.parquet``
(every row that could not be evaluated, with its reason), a TREC run file of the scores and ``disranker.json``.

Nothing is dropped silently: a judgment row or score row that breaks its contract, a score for a pair nobody judged
and a judged pair with no score all land in ``rejected`` and are counted in ``n_rejected``; the rest is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker import lineage, tracking
from disranker.config import ConfigError, to_dict
from disranker.data import io, schemas
from disranker.data.trec import write_trec_run
from disranker.data.validate import rejected_table, validate_table
from disranker.evaluation.metrics import evaluate_rankings


@dataclass
class EvaluateConfig:
    judgments: str = ""  # judgments table (Parquet file or folder, local or URI)
    scores: str = ""  # scores table: query_id, doc_id, score, model
    output_dir: str | None = None  # None: print only, write nothing
    model: str | None = None  # which model to evaluate when the scores table holds several
    mrr_min_label: int = 1  # MRR counts the first doc with at least this label (4 = the exact answer in the demo)

    def validate(self) -> None:
        for key in ("judgments", "scores"):
            if not getattr(self, key):
                raise ConfigError(f"'{key}' is required: the path of the {key} table")
        if not schemas.MIN_LABEL <= self.mrr_min_label <= schemas.MAX_LABEL:
            raise ConfigError(f"'mrr_min_label' must be within {schemas.MIN_LABEL}–{schemas.MAX_LABEL}")


@dataclass
class Evaluation:
    metrics: dict  # evaluate_rankings' keys plus model and n_rejected
    rejected: pa.Table  # the rejected contract: table, row, reason, record
    scores: pa.Table  # the evaluated model's valid score rows (scores contract), e.g. for a TREC run


def run(config: EvaluateConfig) -> Evaluation:
    judgments = io.read_table(config.judgments)
    scores = io.read_table(config.scores)
    result = evaluate_scores(judgments, scores, model=config.model, mrr_min_label=config.mrr_min_label)
    if config.output_dir:
        out = config.output_dir
        io.write_json(result.metrics, io.join(out, "metrics.json"))
        io.write_table(result.rejected, io.join(out, "rejected.parquet"))
        write_trec_run(result.scores, io.join(out, f"{result.metrics['model']}.run"))
        lineage.write_lineage(out, "evaluate", to_dict(config), metrics=result.metrics)
        tracking.log_stage_alone(out)
    return result


def evaluate_scores(
    judgments: pa.Table, scores: pa.Table, *, model: str | None = None, mrr_min_label: int = 1
) -> Evaluation:
    """Metrics of one model's ``scores`` against ``judgments``, and every row that could not be used."""
    judged = validate_table(judgments, "judgments")
    scored = validate_table(scores, "scores")
    chosen_model = _choose_model(scored.valid, model)
    is_model = pc.equal(scored.valid["model"], chosen_model)
    keyed_judgments = judged.valid.append_column("_row", pa.array(judged.rows, pa.int64()))
    keyed_scores = (
        scored.valid.select(["query_id", "doc_id", "score"])
        .append_column("_score_row", pa.array(scored.rows, pa.int64()))
        .filter(is_model)
    )
    joined = keyed_judgments.join(keyed_scores, keys=list(schemas.KEY), join_type="full outer")
    unscored = joined.filter(pc.is_null(joined["score"]))
    unjudged = joined.filter(pc.is_null(joined["label"]))
    matched = joined.filter(pc.and_(pc.is_valid(joined["score"]), pc.is_valid(joined["label"])))

    rejected = pa.concat_tables(
        [
            judged.rejected,
            scored.rejected,
            _unmatched(judgments, unscored["_row"], "judgments", "no score for this (query_id, doc_id)"),
            _unmatched(scores, unjudged["_score_row"], "scores", "no judgment for this (query_id, doc_id)"),
        ]
    )
    metrics = evaluate_rankings(
        np.asarray(matched["query_id"].to_pylist(), dtype=object),
        matched["label"].to_numpy(),
        matched["score"].to_numpy(),
        mrr_min_label=mrr_min_label,
    )
    metrics = {"model": chosen_model, **metrics, "n_rejected": rejected.num_rows}
    return Evaluation(metrics, rejected, scored.valid.filter(is_model))


def _choose_model(scores: pa.Table, model: str | None) -> str:
    models = sorted(set(scores["model"].to_pylist()))
    if model is not None:
        if model not in models:
            raise ValueError(f"model {model!r} is not in the scores table; it holds: {', '.join(models) or 'none'}")
        return model
    if len(models) != 1:
        raise ValueError(
            f"the scores table holds {len(models)} models ({', '.join(models) or 'no valid rows'}): "
            "choose one with model=NAME"
        )
    return models[0]


def _unmatched(source: pa.Table, rows: pa.ChunkedArray, table_name: str, reason: str) -> pa.Table:
    return rejected_table(source, table_name, dict.fromkeys((r for r in rows.to_pylist() if r is not None), reason))
