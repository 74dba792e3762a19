"""BM25 and random baselines: ranking sanity, one output row per input row, the scores contract."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from disranker.data.schemas import POOL, SCORES
from disranker.evaluation.baselines import bm25_scores, random_scores

ROWS = [
    ("q1", "solar panel efficiency", "d1", "Solar panel", "The efficiency of a solar panel in winter."),
    ("q1", "solar panel efficiency", "d2", "", "A chocolate cake recipe with dark cocoa."),
    ("q1", "solar panel efficiency", "d3", "Wind farms", "Turbines and their panel of engineers."),
    ("q2", "chocolate cake", "d2", "", "A chocolate cake recipe with dark cocoa."),
    ("q2", "chocolate cake", "d1", "Solar panel", "The efficiency of a solar panel in winter."),
    ("q3", "the of and", "d4", "Stopwords", "Only stopwords in the query."),
]


def _pool(rows: list[tuple[str, ...]] = ROWS) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in POOL.names]
    return pa.table(dict(zip(POOL.names, columns, strict=True)), schema=POOL)


def _score_of(scores: pa.Table, query_id: str, doc_id: str) -> float:
    for row in scores.to_pylist():
        if (row["query_id"], row["doc_id"]) == (query_id, doc_id):
            return row["score"]
    raise KeyError((query_id, doc_id))


def test_bm25_ranks_the_document_sharing_query_terms_first():
    scores = bm25_scores(_pool())
    assert _score_of(scores, "q1", "d1") > _score_of(scores, "q1", "d3") > _score_of(scores, "q1", "d2") == 0.0
    # d1 and d2 appear under both queries; each row carries its own query's score.
    assert _score_of(scores, "q2", "d2") > _score_of(scores, "q2", "d1") == 0.0


def test_bm25_query_of_only_stopwords_scores_zero():
    assert _score_of(bm25_scores(_pool()), "q3", "d4") == 0.0


def test_bm25_keeps_every_row_in_order_with_the_scores_contract():
    pool = _pool()
    scores = bm25_scores(pool, k1=1.2, b=0.5, model="bm25-tuned")
    assert scores.schema.equals(SCORES)
    assert scores.num_rows == pool.num_rows
    assert scores.column("query_id").to_pylist() == pool.column("query_id").to_pylist()
    assert scores.column("doc_id").to_pylist() == pool.column("doc_id").to_pylist()
    assert set(scores.column("model").to_pylist()) == {"bm25-tuned"}


def test_bm25_of_an_empty_table_is_an_empty_scores_table():
    scores = bm25_scores(_pool([]))
    assert scores.num_rows == 0 and scores.schema.equals(SCORES)


def test_bm25_scores_a_benchmark_sized_pool():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(2000)])
    n_queries, per_query = 500, 20
    query_text = [" ".join(terms) for terms in rng.choice(words, (n_queries, 4))]
    rows = [
        (f"q{row // per_query}", query_text[row // per_query], f"d{row}", "", " ".join(terms))
        for row, terms in enumerate(rng.choice(words, (n_queries * per_query, 30)))
    ]
    scores = bm25_scores(_pool(rows))
    assert scores.num_rows == n_queries * per_query
    assert np.isfinite(scores.column("score").to_numpy()).all()


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    pool = _pool()
    first, again, other = random_scores(pool, seed=3), random_scores(pool, seed=3), random_scores(pool, seed=4)
    assert first.schema.equals(SCORES) and first.num_rows == pool.num_rows
    assert first.column("score").to_pylist() == again.column("score").to_pylist()
    assert first.column("score").to_pylist() != other.column("score").to_pylist()
    values = first.column("score").to_numpy()
    assert ((values >= 0) & (values < 1)).all()
    assert set(first.column("model").to_pylist()) == {"random"}
