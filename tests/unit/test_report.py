"""The plain-text metrics table: exact layout, float and count formatting, missing metrics."""

from __future__ import annotations

from disranker.evaluation.report import metrics_table


def test_two_model_table_is_exactly_laid_out():
    rows = {
        "bm25": {"pnr": 1.5, "pnr_query_mean": 1.25, "ndcg@10": 0.123456, "mrr@10": 0.5, "n_queries": 2,
                 "n_preference_pairs": 6},
        "random": {"pnr": 0.98766, "ndcg@10": 1.0, "mrr@10": 0.0, "n_queries": 2, "n_preference_pairs": 12345},
    }  # fmt: skip
    assert metrics_table(rows) == (
        "model      pnr  pnr_query_mean  ndcg@10  mrr@10  n_queries  n_preference_pairs\n"
        "------  ------  --------------  -------  ------  ---------  ------------------\n"
        "bm25    1.5000          1.2500   0.1235  0.5000          2                   6\n"
        "random  0.9877               -   1.0000  0.0000          2               12345"
    )


def test_chosen_columns_only_and_a_long_model_name_widens_the_first_column():
    row = {"pnr": 2.0, "n_preference_pairs": 10, "ndcg@1": 0.5}
    table = metrics_table({"a-long-model-name": row}, columns=["pnr"])
    assert table == "model                 pnr\n-----------------  ------\na-long-model-name  2.0000"


def test_no_models_gives_header_and_rule_only():
    table = metrics_table({}, columns=["pnr", "n_preference_pairs"])
    assert table == "model  pnr  n_preference_pairs\n-----  ---  ------------------"
