"""``runtime: onnx-int8``: serve the student's int8 ONNX graph, but only after checking that it ranks like torch.

At replica start ``load_checked_scorer`` loads the torch student, gets its int8 graph (``models.onnx_export``,
exported once per machine and cached), scores a check set of (query, document) pairs with both runtimes and compares
them with ``check_agreement``. When the Spearman correlation or the mean top-10 agreement is below the configured
floor (``RankerArgs.onnx``), or the export itself fails, the replica serves torch; either way the outcome, the numbers
and the reason are in ``scorer.runtime`` (shown by /info) and in the replica's log.

Each replica runs the check itself rather than trusting a cached verdict: int8 kernels differ between CPUs (VNNI,
AVX-512), so a graph that agrees on one node may not on another.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker.data import io
from disranker.evaluation.correlation import pearson, spearman
from disranker.models.onnx_export import int8_student, open_session, score_pairs_onnx
from disranker.models.text import WORDS, pair_texts
from disranker.serving.config import RankerArgs
from disranker.serving.scorer import PairScorer, TorchScorer

logger = logging.getLogger(__name__)

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
    """The pairs to compare the runtimes on, and where they came from (see ``OnnxArgs`` for the order tried).

    A configured table that cannot be read is an error: the operator asked for it. A lineage dev split that cannot be
    read (a folder moved off the machine that trained it) only moves on to the synthetic pairs."""
    if args.onnx.check_judgments:
        table = io.read_table(args.onnx.check_judgments, columns=CHECK_COLUMNS)
        return first_queries(table, args.onnx.check_max_queries), args.onnx.check_judgments
    data = ((lineage or {}).get("config") or {}).get("data")
    dev = data.get("dev") if isinstance(data, dict) else None
    if isinstance(dev, str) and dev and io.exists(dev):
        table = io.read_table(dev, columns=CHECK_COLUMNS)
        return first_queries(table, args.onnx.check_max_queries), f"lineage dev split {dev}"
    return synthetic_pairs(), "synthetic pairs (no check_judgments and no readable dev split in the lineage)"


@dataclass(kw_only=True)
class OnnxScorer(PairScorer):
    """The student as an ONNX Runtime session (the torch weights are released once the check has passed)."""

    session: Any

    def score(self, queries: Sequence[str], titles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        return self._score_with(score_pairs_onnx, self.session, queries, titles, summaries)


def _fall_back(scorer: PairScorer, report: dict, reason: str) -> PairScorer:
    logger.warning("serving the torch student instead of onnx-int8: %s", reason)
    scorer.runtime = {**report, "active": "torch", "reason": reason}
    return scorer


def load_checked_scorer(torch_scorer: TorchScorer, args: RankerArgs) -> PairScorer:
    """An ``OnnxScorer`` when the int8 graph passes the check on ``check_set``, else ``torch_scorer`` (with the
    reason in its ``runtime``)."""
    floors = {"spearman": args.onnx.min_spearman, f"top{TOP_K}_agreement": args.onnx.min_top10_agreement}
    report: dict = {"requested": args.runtime, "active": None, "reason": None, "thresholds": floors}
    try:
        cache_name = re.sub(r"[^\w.-]+", "-", torch_scorer.model_id.rstrip("/").rsplit("/", 1)[-1])  # readable only
        path = int8_student(torch_scorer.model, torch_scorer.tokenizer, name=cache_name, cache_root=args.onnx.cache_dir)
        session = open_session(path, args.threads())
    except ImportError as exc:
        return _fall_back(torch_scorer, report, f"{exc}: install the extra with `pip install 'disranker[onnx]'`")
    except Exception as exc:  # an architecture the exporter or quantiser cannot handle: torch still serves it
        logger.exception("ONNX export of %s failed", torch_scorer.model_id)
        return _fall_back(torch_scorer, report, f"export failed: {type(exc).__name__}: {exc}")
    report["onnx_file"] = str(path)

    pairs, source = check_set(args, torch_scorer.lineage)
    texts = pair_texts(pairs)
    onnx_scorer = OnnxScorer(
        tokenizer=torch_scorer.tokenizer,
        model_id=torch_scorer.model_id,
        lineage=torch_scorer.lineage,
        max_length=args.max_length,
        forward_batch_size=args.forward_batch_size,
        session=session,
    )
    agreement = check_agreement(torch_scorer.score(*texts), onnx_scorer.score(*texts), pairs["query_id"].to_numpy())
    # NaN (a constant score, or no query with two documents) becomes null: JSON has no NaN, and /info shows this.
    report["check"] = {"source": source, **{k: None if v != v else v for k, v in agreement.items()}}
    # `not >=` rather than `<`, so a NaN (constant scores) fails too.
    failed = [
        f"{name} {agreement[name]:.4f} < {floor}" for name, floor in floors.items() if not agreement[name] >= floor
    ]
    if failed:
        return _fall_back(torch_scorer, report, "int8 ranks unlike torch on the check set: " + ", ".join(failed))
    logger.info("serving onnx-int8 (%s): %s", path, agreement)
    onnx_scorer.runtime = {**report, "active": args.runtime, "reason": None}
    return onnx_scorer
