"""The evaluation stage on hand-built tables: hand-computed metrics, and every unusable row in ``rejected``."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker.data.schemas import REJECTED
from disranker.evaluation.evaluate import EvaluateConfig, evaluate_scores, run

# (query_id, doc_id, label): two queries × three docs, then a label out of range and a judged pair nobody scored.
JUDGED = [
    ("q1", "d1", 2), ("q1", "d2", 1), ("q1", "d3", 0),
    ("q2", "d1", 0), ("q2", "d2", 3), ("q2", "d3", 1),
    ("q2", "d4", 9),  # row 6: label outside 0–4
    ("q1", "d4", 1),  # row 7: judged, no score
]  # fmt: skip
# (query_id, doc_id, score)
SCORED = [
    ("q1", "d1", 0.9), ("q1", "d2", 0.5), ("q1", "d3", 0.7),
    ("q2", "d1", 0.8), ("q2", "d2", 0.6), ("q2", "d3", 0.1),
    ("q3", "d1", float("nan")),  # row 6: not finite
    ("q9", "d9", 0.2),  # row 7: nobody judged q9/d9
]  # fmt: skip

# q1 ranks d1(2) d3(0) d2(1): concordant d1>d2, d1>d3; discordant d2>d3.
# q2 ranks d1(0) d2(3) d3(1): concordant d2>d3; discordant d2>d1, d3>d1.
DCG_Q1 = 3 / math.log2(2) + 0 / math.log2(3) + 1 / math.log2(4)
IDCG_Q1 = 3 / math.log2(2) + 1 / math.log2(3) + 0 / math.log2(4)
DCG_Q2 = 0 / math.log2(2) + 7 / math.log2(3) + 1 / math.log2(4)
IDCG_Q2 = 7 / math.log2(2) + 1 / math.log2(3) + 0 / math.log2(4)
EXPECTED = {
    "model": "m",
    "pnr": 3 / 3,
    "pnr_query_mean": (2 / 1 + 1 / 2) / 2,
    "pairwise_accuracy": 3 / 6,
    "ndcg@1": (1.0 + 0.0) / 2,
    "ndcg@5": (DCG_Q1 / IDCG_Q1 + DCG_Q2 / IDCG_Q2) / 2,
    "ndcg@10": (DCG_Q1 / IDCG_Q1 + DCG_Q2 / IDCG_Q2) / 2,
    "mrr@10": (1 / 1 + 1 / 2) / 2,
    "n_queries": 2,
    "n_preference_pairs": 6,
    "n_ties": 0,
    "n_rejected": 4,
}


def judgments_table(rows=JUDGED) -> pa.Table:
    return pa.table(
        {
            "query_id": [q for q, _, _ in rows],
            "query": [f"query {q}" for q, _, _ in rows],
            "doc_id": [d for _, d, _ in rows],
            "title": [""] * len(rows),
            "summary": [f"text of {d}" for _, d, _ in rows],
            "label": pa.array([label for _, _, label in rows], pa.int64()),
        }
    )


def scores_table(rows=SCORED, model: str = "m") -> pa.Table:
    return pa.table(
        {
            "query_id": [q for q, _, _ in rows],
            "doc_id": [d for _, d, _ in rows],
            "score": pa.array([s for _, _, s in rows], pa.float64()),
            "model": [model] * len(rows),
        }
    )


def test_metrics_equal_the_hand_computed_values():
    result = evaluate_scores(judgments_table(), scores_table())
    assert result.metrics == pytest.approx(EXPECTED)
    assert list(result.metrics) == list(EXPECTED)


def test_every_unusable_row_is_rejected_with_table_row_and_reason():
    rejected = evaluate_scores(judgments_table(), scores_table()).rejected
    assert rejected.schema == REJECTED
    assert rejected.select(["table", "row", "reason"]).to_pylist() == [
        {"table": "judgments", "row": 6, "reason": "label: 9 is outside 0–4"},
        {"table": "scores", "row": 6, "reason": "score: nan is not finite"},
        {"table": "judgments", "row": 7, "reason": "no score for this (query_id, doc_id)"},
        {"table": "scores", "row": 7, "reason": "no judgment for this (query_id, doc_id)"},
    ]


def test_rejected_records_hold_the_original_rows():
    records = [json.loads(r) for r in evaluate_scores(judgments_table(), scores_table()).rejected["record"].to_pylist()]
    assert [(r["query_id"], r["doc_id"]) for r in records] == [("q2", "d4"), ("q3", "d1"), ("q1", "d4"), ("q9", "d9")]
    assert records[0]["label"] == 9
    assert records[1]["score"] == "nan"


def test_clean_tables_reject_nothing():
    result = evaluate_scores(judgments_table(JUDGED[:6]), scores_table(SCORED[:6]))
    assert result.rejected.num_rows == 0
    assert result.metrics["n_rejected"] == 0
    assert result.metrics["n_preference_pairs"] == 6


def test_mrr_min_label_moves_the_first_hit():
    # Label ≥ 2: q1's d1 at rank 1, q2's d2 at rank 2; label ≥ 3: q1 has none, q2's d2 at rank 2.
    assert evaluate_scores(judgments_table(), scores_table(), mrr_min_label=2).metrics["mrr@10"] == 0.75
    assert evaluate_scores(judgments_table(), scores_table(), mrr_min_label=3).metrics["mrr@10"] == 0.25


def test_tied_scores_are_counted_as_ties():
    rows = [("q1", "d1", 0.5), ("q1", "d2", 0.5), ("q1", "d3", 0.7)]
    metrics = evaluate_scores(judgments_table(JUDGED[:3]), scores_table(rows)).metrics
    # Pairs: d1>d2 tied, d1>d3 discordant, d2>d3 discordant.
    assert (metrics["n_preference_pairs"], metrics["n_ties"], metrics["pnr"], metrics["pairwise_accuracy"]) == (
        3,
        1,
        0.0,
        0.5 / 3,
    )


def test_several_models_without_model_is_an_error_naming_them():
    scores = pa.concat_tables([scores_table(model="bm25"), scores_table(model="random")])
    with pytest.raises(ValueError) as err:
        evaluate_scores(judgments_table(), scores)
    assert str(err.value) == "the scores table holds 2 models (bm25, random): choose one with model=NAME"


def test_model_picks_one_of_several_models():
    reversed_scores = [(q, d, -s) for q, d, s in SCORED[:6]]
    scores = pa.concat_tables([scores_table(model="bm25"), scores_table(reversed_scores, model="reversed")])
    result = evaluate_scores(judgments_table(), scores, model="bm25")
    assert result.metrics == pytest.approx({**EXPECTED, "model": "bm25"})
    # Reversed, q1 ranks d2(1) first (ideal gain 3) and q2 ranks d3(1) first (ideal gain 7). Its rows are all valid
    # and judged, so the rejected rows are label 9, bm25's NaN score and the judged pair with no score.
    other = evaluate_scores(judgments_table(), scores, model="reversed").metrics
    assert (other["model"], other["ndcg@1"], other["n_preference_pairs"], other["n_rejected"]) == (
        "reversed",
        pytest.approx((1 / 3 + 1 / 7) / 2),
        6,
        3,
    )


def test_rows_of_other_models_are_not_rejected():
    scores = pa.concat_tables([scores_table(SCORED[:6], model="a"), scores_table(SCORED[:6], model="b")])
    result = evaluate_scores(judgments_table(JUDGED[:6]), scores, model="a")
    assert result.rejected.num_rows == 0


def test_unknown_model_is_an_error_listing_the_models():
    with pytest.raises(ValueError, match="model 'nope' is not in the scores table; it holds: m"):
        evaluate_scores(judgments_table(), scores_table(), model="nope")


def test_run_writes_metrics_rejected_run_file_and_lineage(tmp_path):
    judgments, scores, out = tmp_path / "j.parquet", tmp_path / "s.parquet", tmp_path / "eval"
    pq.write_table(judgments_table(), judgments)
    pq.write_table(scores_table(), scores)
    config = EvaluateConfig(judgments=str(judgments), scores=str(scores), output_dir=str(out))

    result = run(config)

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "model", "pnr", "pnr_query_mean", "pairwise_accuracy", "ndcg@1", "ndcg@5", "ndcg@10", "mrr@10",
        "n_queries", "n_preference_pairs", "n_ties", "n_rejected",
    }  # fmt: skip
    assert metrics == pytest.approx(EXPECTED)
    assert metrics == result.metrics
    assert pq.read_table(out / "rejected.parquet").equals(result.rejected)
    assert (out / "m.run").read_text() == (
        "q1 Q0 d1 1 0.9 m\n"
        "q1 Q0 d3 2 0.7 m\n"
        "q1 Q0 d2 3 0.5 m\n"
        "q2 Q0 d1 1 0.8 m\n"
        "q2 Q0 d2 2 0.6 m\n"
        "q2 Q0 d3 3 0.1 m\n"
        "q9 Q0 d9 1 0.2 m\n"
    )
    record = json.loads((out / "disranker.json").read_text())
    assert record["stage"] == "evaluate"
    assert record["parents"] == []
    assert record["config"] == {
        "judgments": str(judgments), "scores": str(scores), "output_dir": str(out), "model": None, "mrr_min_label": 1,
    }  # fmt: skip
    assert record["metrics"] == metrics


def test_run_without_output_dir_writes_nothing(tmp_path):
    pq.write_table(judgments_table(), tmp_path / "j.parquet")
    pq.write_table(scores_table(), tmp_path / "s.parquet")
    result = run(EvaluateConfig(judgments=str(tmp_path / "j.parquet"), scores=str(tmp_path / "s.parquet")))
    assert result.metrics["n_preference_pairs"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.parquet", "s.parquet"]
