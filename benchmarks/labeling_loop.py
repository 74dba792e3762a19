"""The baseline ``benchmarks/labeling.py`` measures the labeling stage against: the one-process loop a user writes
first, and how closely the stage's scores agree with it."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq


def naive_loop(task: dict) -> dict:
    """Deliberately naive: the loop a user writes first. Default torch threads, rows in file order (no length
    sorting), each batch padded to its longest pair, ``torch.no_grad``. It only shares the text format with the stage
    (``encode_teacher``), so the scores are the same and the speed difference is the stage's doing."""
    import numpy as np
    import pyarrow as pa
    import torch

    from disranker.models.loading import load_teacher_scorer
    from disranker.models.text import encode_teacher

    started = time.perf_counter()
    pool = pq.read_table(task["pool"])
    model, tokenizer = load_teacher_scorer(task["teacher"])
    model.eval()
    loaded = time.perf_counter()
    queries, titles, summaries = (pool[name].to_pylist() for name in ("query", "title", "summary"))
    scores, size = [], task["batch_size"]
    with torch.no_grad():
        for start in range(0, pool.num_rows, size):
            rows = slice(start, start + size)
            ids = encode_teacher(tokenizer, queries[rows], titles[rows], summaries[rows], max_length=task["max_length"])
            batch = tokenizer.pad(ids, padding=True, padding_side="right", return_tensors="pt")
            scores.append(model(**batch).logits[:, 0].numpy())
    labels = pool.select(["query_id", "doc_id"]).append_column("teacher_score", pa.array(np.concatenate(scores)))
    pq.write_table(labels, task["output"])
    wall = time.perf_counter() - started
    return {"wall_s": wall, "load_s": loaded - started, "torch_threads": torch.get_num_threads()}


def agreement_with_loop(loop_file: str, labels_dir: str) -> dict:
    """Largest |loop score - stage score| over the pairs (both modes must have done the same work) and the Spearman
    correlation of the two (how a bf16 teacher's ranking compares with the fp32 loop's)."""
    import pyarrow as pa
    from scipy.stats import spearmanr

    loop = pq.read_table(loop_file)
    stage = pa.concat_tables(
        [
            pq.read_table(p, columns=["query_id", "doc_id", "teacher_score"])
            for p in sorted(Path(labels_dir, "labels").glob("*.parquet"))
        ]
    )
    joined = loop.join(stage, ["query_id", "doc_id"], right_suffix="_stage")
    if joined.num_rows != loop.num_rows:
        raise RuntimeError(f"{labels_dir}: {joined.num_rows} of {loop.num_rows} pairs labeled")
    loop_scores, stage_scores = joined["teacher_score"].to_numpy(), joined["teacher_score_stage"].to_numpy()
    return {
        "max_abs_diff_vs_loop": float(abs(loop_scores - stage_scores).max()),
        "spearman_vs_loop": float(spearmanr(loop_scores, stage_scores).statistic),
    }
