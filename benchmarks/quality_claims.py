"""The quality study's statistics: per-query NDCG@10 from a comparison folder, seed means, the paired-bootstrap
intervals the claims rest on, whether each claim holds, and the learning-curve plot (``benchmarks/quality_study.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disranker.data import io
from disranker.evaluation import metrics
from disranker.evaluation.statistics import paired_bootstrap


def per_query_ndcg(compare_dir: str, test: str) -> dict[str, np.ndarray]:
    """Each model's NDCG@10 per test query (queries in sorted id order, the same for every model)."""
    judgments = io.read_table(test, columns=["query_id", "doc_id", "label"])
    out = {}
    for name, entry in io.read_json(io.join(compare_dir, "metrics.json")).items():
        scores = io.read_table(io.join(compare_dir, f"{name}.parquet")).select(["query_id", "doc_id", "score"])
        joined = judgments.join(scores, ["query_id", "doc_id"])
        qids = np.asarray(joined["query_id"].to_pylist(), dtype=object)
        _, values = metrics.ndcg_at_k_per_query(qids, joined["label"].to_numpy(), joined["score"].to_numpy(), 10)
        assert entry["n_queries"] == len(values), name
        out[name] = values
    return out


def summarize(budget: int, compare_dir: str, test: str, losses: list[str], seeds: list[int], dev: dict) -> dict:
    """Test metrics, seed means and the intervals; ``dev`` (each model's best dev epoch) picks the best single loss,
    because no choice is made on test."""
    table = io.read_json(io.join(compare_dir, "metrics.json"))
    ndcg = per_query_ndcg(compare_dir, test)
    families = {"labels_only": "labels_only", **{loss: loss for loss in losses}}
    for family in families:  # a student family's per-query value: the mean over its seeds
        ndcg[family] = np.mean([ndcg[f"{family}_s{s}"] for s in seeds], axis=0)
    mean_std = {
        family: {
            metric: [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]
            for metric in ("ndcg@10", "pnr", "mrr@10")
            for v in [[table[f"{family}_s{s}"][metric] for s in seeds]]
        }
        for family in families
    }
    singles = [loss for loss in losses if loss != "hybrid"]
    dev_value = {loss: np.mean([dev[f"{loss}_s{s}"]["value"] for s in seeds]) for loss in singles}
    best_single = max(singles, key=dev_value.get) if singles else None
    intervals = {
        "teacher_minus_labels_only": paired_bootstrap(ndcg["teacher"], ndcg["labels_only"]),
        "distilled_minus_labels_only": paired_bootstrap(ndcg["hybrid"], ndcg["labels_only"]),
        "distilled_over_teacher": paired_bootstrap(ndcg["hybrid"], ndcg["teacher"], statistic="ratio"),
        "cpt_on_minus_off": paired_bootstrap(ndcg["teacher"], ndcg["teacher_no_cpt"]),
    }
    if best_single:
        intervals["hybrid_minus_best_single"] = paired_bootstrap(ndcg["hybrid"], ndcg[best_single])
    return {
        "budget": budget,
        "test_queries": len(ndcg["teacher"]),
        "ndcg@10": {name: float(v.mean()) for name, v in ndcg.items()},
        "metrics": {name: {k: table[name][k] for k in ("ndcg@10", "pnr", "mrr@10", "n_queries")} for name in table},
        "students_mean_std": mean_std,
        "best_single_loss": best_single,
        "dev_best": dev,
        "intervals": {name: interval.as_dict() for name, interval in intervals.items()},
    }


# When each claim holds: (rule in words, test on the interval).
CLAIM_RULES = {
    "teacher_minus_labels_only": ("≥ +0.03 and interval above 0", lambda i: i["value"] >= 0.03 and i["ci_low"] > 0),
    "distilled_minus_labels_only": ("interval above 0", lambda i: i["ci_low"] > 0),
    "distilled_over_teacher": ("≥ 0.97", lambda i: i["value"] >= 0.97),
    "cpt_on_minus_off": ("interval above 0", lambda i: i["ci_low"] > 0),
    "hybrid_minus_best_single": ("interval above 0", lambda i: i["ci_low"] > 0),
}


def claims(budget_result: dict) -> list[dict]:
    out = []
    for name, (rule, holds) in CLAIM_RULES.items():
        interval = budget_result["intervals"].get(name)
        if interval is not None:
            out.append({"name": name, **interval, "holds": bool(holds(interval)), "rule": rule})
    return out


def plot_learning_curve(budgets: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [b["budget"] for b in budgets]
    for name, label in (("teacher", "teacher (CPT + SFT)"), ("teacher_no_cpt", "teacher (SFT only)"),
                        ("labels_only", "labels-only student"), ("hybrid", "distilled student (hybrid)"),
                        ("bm25", "BM25")):  # fmt: skip
        ax.plot(xs, [b["ndcg@10"][name] for b in budgets], marker="o", label=label)
    ax.set(xscale="log", xlabel="human-labeled train queries", ylabel=f"NDCG@10 ({budgets[0]['test_queries']} test q.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
