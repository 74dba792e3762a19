"""The main job end to end on the tiny corpus: corpus, baselines, metrics, lineage, and a rerun that resumes."""

from __future__ import annotations

import re

import pyarrow.compute as pc

from disranker import pipeline
from disranker.config import load_config
from disranker.data import io
from disranker.evaluation.metrics import pair_counts


def test_smoke_pipeline_prints_the_baseline_table(tmp_path, wordnet_dir):
    config = load_config(
        pipeline.PipelineConfig,
        "jobs/configs/pipeline_smoke.yaml",
        [f"output_dir={tmp_path}", f"corpus.wordnet_dir={wordnet_dir}"],
    )
    result = pipeline.run(config)

    test = io.read_table(tmp_path / "corpus/judgments/test.parquet")
    counts = pair_counts(test["query_id"].to_numpy(), test["label"].to_numpy(), pc.multiply(test["label"], 1.0))
    assert set(result.metrics) == {"bm25", "random"}
    for metrics in result.metrics.values():
        assert metrics["n_queries"] == 20
        assert metrics["n_pairs"] == int(counts.pairs.sum())
        assert metrics["n_rejected"] == 0
    assert io.read_table(tmp_path / "baselines/bm25.parquet").num_rows == test.num_rows
    summary = result.summary()
    assert "bm25" in summary and "random" in summary and "ndcg@10" in summary
    assert re.search(r"test +20 queries +160 pairs", summary), summary

    record = io.read_json(tmp_path / "disranker.json")
    corpus_record = io.read_json(tmp_path / "corpus/disranker.json")
    assert record["stage"] == "pipeline" and record["parents"] == [corpus_record["id"]]

    pipeline.run(config)  # a rerun finds the corpus complete and does not rebuild it
    assert io.read_json(tmp_path / "corpus/disranker.json")["created_at"] == corpus_record["created_at"]
