"""Reference scorers that need no model: BM25 and a seeded random order. Each returns a ``scores`` table.

Input is a judgments or pool table (query_id, query, doc_id, title, summary, ...); output has one row per input row,
in input order, with the ``scores`` contract: query_id, doc_id, score:float32, model:str.

BM25 (bm25s, Lucene variant) scores query q against document d, over the query's terms t, as

    score(q, d) = Σ_{t ∈ q} IDF(t) · tf(t, d) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))
    IDF(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

where the corpus (N, df, avgdl) is the distinct doc_ids of the table, each read as ``title + " " + summary``. A doc_id
that appears under several queries is indexed once, from its first row. Text is lower-cased, split on the bm25s
pattern ``\\b\\w\\w+\\b`` and English stopwords are dropped; there is no stemming (bm25s stems only through PyStemmer,
which is not a dependency), so "running" and "runs" do not match.
"""

from __future__ import annotations

import bm25s
import numpy as np
import pyarrow as pa

from disranker.data.schemas import SCORES

# bm25s's English list (NLTK's); naming it keeps query and corpus tokenisation in step.
STOPWORDS = "en"


def _scores_table(table: pa.Table, scores: np.ndarray, model: str) -> pa.Table:
    return pa.Table.from_arrays(
        [
            table.column("query_id").cast(pa.string()),
            table.column("doc_id").cast(pa.string()),
            pa.array(scores, type=pa.float32()),
            pa.array([model] * table.num_rows, type=pa.string()),
        ],
        schema=SCORES,
    )


def _first_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each distinct value's first occurrence, and each row's index into the distinct values."""
    _, first_row, inverse = np.unique(values, return_index=True, return_inverse=True)
    return first_row, inverse


def _tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=False, show_progress=False)


def bm25_scores(table: pa.Table, *, k1: float = 1.5, b: float = 0.75, model: str = "bm25") -> pa.Table:
    """BM25 score of every (query, doc) row of ``table``, with IDF from the table's distinct documents.

    The index is built once; each distinct query is scored against the whole corpus with ``get_scores_from_ids``
    (one sparse pass over its terms' postings) and its own candidates' scores are picked out. A query with no term
    in the corpus scores 0 for every candidate.
    """
    if table.num_rows == 0:
        return _scores_table(table, np.zeros(0, dtype=np.float32), model)
    query_ids = table.column("query_id").to_numpy(zero_copy_only=False).astype(str)
    doc_ids = table.column("doc_id").to_numpy(zero_copy_only=False).astype(str)
    queries = table.column("query").to_pylist()
    titles = table.column("title").to_pylist()
    summaries = table.column("summary").to_pylist()

    doc_first_row, doc_index = _first_rows(doc_ids)
    corpus = [f"{titles[row]} {summaries[row]}" for row in doc_first_row]
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(_tokenize(corpus), show_progress=False)

    query_first_row, query_index = _first_rows(query_ids)
    query_tokens = _tokenize([queries[row] for row in query_first_row])
    # Rows grouped by query so that each query's candidates are one slice.
    rows_by_query = np.argsort(query_index, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(query_index, minlength=len(query_first_row)))))

    scores = np.empty(table.num_rows, dtype=np.float32)
    for query, tokens in enumerate(query_tokens):
        rows = rows_by_query[bounds[query] : bounds[query + 1]]
        corpus_scores = retriever.get_scores_from_ids(retriever.get_tokens_ids(tokens))
        scores[rows] = corpus_scores[doc_index[rows]]
    return _scores_table(table, scores, model)


def random_scores(table: pa.Table, *, seed: int = 0, model: str = "random") -> pa.Table:
    """Uniform scores in [0, 1) from ``numpy.random.default_rng(seed)``, drawn in row order.

    The same table and seed give the same scores; as continuous draws they almost surely hold no ties, so the
    ranking is a uniformly random order of each query's candidates (PNR ≈ 1, pairwise accuracy ≈ 0.5).
    """
    scores = np.random.default_rng(seed).random(table.num_rows, dtype=np.float32)
    return _scores_table(table, scores, model)
