"""Whether a faster runtime ranks like the torch student: the agreement check every non-torch runtime passes before
a replica serves it (``serving.runtime``), the pairs it is checked on, and the pairs int8 runtimes are calibrated on.

Each replica runs the check itself rather than trusting a cached verdict: int8 and bfloat16 kernels differ between
CPUs (VNNI, AVX-512, AMX), so a graph that agrees on one node may not on another.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from disranker.data import io
from disranker.evaluation.correlation import pearson, spearman
from disranker.models.text import WORDS
from disranker.serving.config import RankerArgs

CHECK_COLUMNS = ["query_id", "query", "doc_id", "title", "summary"]
TOP_K = 10


def check_agreement(torch_scores, onnx_scores, query_ids, k: int = TOP_K) -> dict:
    """How closely ``onnx_scores`` rank like ``torch_scores`` (1-D arrays of one score per pair, same order).

    - ``pearson``, ``spearman``: correlations over all pairs (Spearman with tied values at their mean rank);
    - ``spearman_query_mean``: Spearman within each query of two or more pairs, averaged (NaN if there is none);
    - ``top10_agreement``: per query, |top-k by torch ∩ top-k by onnx| / k with k = min(``k``, pairs of the query),
      averaged over queries (ties broken by input order, identically on both sides);
    - ``max_abs_diff``, ``n_pairs``, ``n_queries``.
    """
    ref = np.asarray(torch_scores, dtype=np.float64)
    new = np.asarray(onnx_scores, dtype=np.float64)
    groups = np.asarray(query_ids)
    if not (ref.ndim == new.ndim == groups.ndim == 1 and len(ref) == len(new) == len(groups)):
        raise ValueError(
            f"torch_scores {ref.shape}, onnx_scores {new.shape} and query_ids {groups.shape} must be 1-D, one per pair"
        )
    if not len(ref):
        raise ValueError("no pairs to compare")
    _, group = np.unique(groups, return_inverse=True)
    overlaps, spearmans = [], []
    for rows in np.split(np.argsort(group, kind="stable"), np.cumsum(np.bincount(group))[:-1]):
        top = min(k, len(rows))
        by_ref = rows[np.argsort(-ref[rows], kind="stable")[:top]]
        by_new = rows[np.argsort(-new[rows], kind="stable")[:top]]
        overlaps.append(len(np.intersect1d(by_ref, by_new)) / top)
        if len(rows) > 1:
            spearmans.append(spearman(ref[rows], new[rows]))
    return {
        "pearson": pearson(ref, new),
        "spearman": spearman(ref, new),
        "spearman_query_mean": float(np.mean(spearmans)) if spearmans else float("nan"),
        f"top{k}_agreement": float(np.mean(overlaps)),
        "max_abs_diff": float(np.abs(ref - new).max()),
        "n_pairs": len(ref),
        "n_queries": len(overlaps),
    }


def synthetic_pairs(n_queries: int = 16, docs_per_query: int = 20, seed: int = 0) -> pa.Table:
    """Deterministic word-salad pairs of demo-like length (6-word query, 4-word title, 30-word summary): the check
    set of last resort, for a student with neither a configured check table nor a dev split in its lineage."""
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choices(WORDS, k=6))
        for d in range(docs_per_query):
            title, summary = " ".join(rng.choices(WORDS, k=4)), " ".join(rng.choices(WORDS, k=30))
            rows.append({"query_id": f"q{q}", "query": query, "doc_id": f"d{d}", "title": title, "summary": summary})
    return pa.Table.from_pylist(rows)


def first_queries(table: pa.Table, max_queries: int) -> pa.Table:
    """The rows of the first ``max_queries`` distinct query ids, in the table's order."""
    ids = list(dict.fromkeys(table["query_id"].to_pylist()))[:max_queries]
    return table.filter(pc.is_in(table["query_id"], value_set=pa.array(ids, type=table["query_id"].type)))


def check_set(args: RankerArgs, lineage: dict | None) -> tuple[pa.Table, str]:
    """The pairs to compare the runtimes on, and where they came from (see ``RuntimeCheckArgs`` for the order tried).

    A configured table that cannot be read is an error: the operator asked for it. A lineage dev split that cannot be
    read (a folder moved off the machine that trained it) only moves on to the synthetic pairs."""
    wanted = args.check.check_max_queries
    if args.check.check_judgments:
        return _first_queries_of(args.check.check_judgments, wanted), args.check.check_judgments
    dev = _lineage_table(lineage, "dev")
    if dev is not None:
        return _first_queries_of(dev, wanted), f"lineage dev split {dev}"
    return synthetic_pairs(), "synthetic pairs (no check_judgments and no readable dev split in the lineage)"


def calibration_set(args: RankerArgs, lineage: dict | None) -> tuple[pa.Table, str]:
    """The pairs an int8 runtime measures its activation ranges on, and where they came from: ``calibration_judgments``
    when given; else the student's own training table from its lineage (labels, else judgments), so that the check on
    the dev split stays independent of the calibration; else synthetic pairs other than the check's."""
    wanted = args.check.calibration_max_queries
    if args.check.calibration_judgments:
        return _first_queries_of(args.check.calibration_judgments, wanted), args.check.calibration_judgments
    for name in ("labels", "judgments"):
        table = _lineage_table(lineage, name)
        if table is not None:
            return _first_queries_of(table, wanted), f"lineage training {name} {table}"
    return synthetic_pairs(seed=1), "synthetic pairs (no calibration_judgments and no readable training table)"


def _lineage_table(lineage: dict | None, name: str) -> str | None:
    """The table the student's stage read as ``data.<name>``, when it can still be read here."""
    data = ((lineage or {}).get("config") or {}).get("data")
    path = data.get(name) if isinstance(data, dict) else None
    return path if isinstance(path, str) and path and io.exists(path) else None


def _first_queries_of(uri: str, wanted: int) -> pa.Table:
    """``first_queries`` of the table at ``uri``, reading only its first record batches (a training pool may hold
    millions of rows; a replica reads what it needs). Rows of one query are assumed to be together, as every table
    written here keeps them."""
    fs, _ = io.resolve(uri)
    dataset = pads.dataset(io.parquet_files(uri), filesystem=fs, format="parquet")
    batches, seen = [], set()
    for batch in dataset.to_batches(columns=CHECK_COLUMNS):
        batches.append(batch)
        seen.update(batch["query_id"].to_pylist())
        if len(seen) > wanted:
            break
    return first_queries(
        pa.Table.from_batches(batches, schema=pa.schema([dataset.schema.field(name) for name in CHECK_COLUMNS])), wanted
    )
