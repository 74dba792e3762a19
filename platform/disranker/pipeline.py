"""The main job: every stage in order on the embedded defaults, ending with one comparison table.

Today the stages are the demo corpus and the baselines on its test split (BM25 and a random order); the teacher,
labeling, distillation and serving stages join here as they land. Each stage writes into ``<output_dir>/<stage>``
with its ``disranker.json``; a stage whose output already matches its config is skipped, so a rerun resumes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from disranker import lineage
from disranker.config import ConfigError, to_dict
from disranker.data import demo, io
from disranker.evaluation import baselines
from disranker.evaluation.evaluate import evaluate_scores
from disranker.evaluation.report import metrics_table

BASELINES = ("bm25", "random")


@dataclass
class BaselineSection:
    models: list[str] = field(default_factory=lambda: list(BASELINES))  # subset of: bm25, random
    split: Literal["dev", "test"] = "test"  # the judgments split every model is evaluated on
    mrr_min_label: int = 4  # MRR@10 looks for the exact synset (label 4) in the demo
    seed: int = 0  # the random-order baseline's seed

    def validate(self) -> None:
        unknown = sorted(set(self.models) - set(BASELINES))
        if unknown:
            raise ConfigError(f"unknown baseline '{unknown[0]}' in evaluation.models; allowed: {', '.join(BASELINES)}")


@dataclass
class PipelineConfig:
    output_dir: str = "outputs/demo"  # every stage writes into a folder below this one
    corpus: demo.DemoCorpusConfig = field(default_factory=demo.DemoCorpusConfig)
    evaluation: BaselineSection = field(default_factory=BaselineSection)


@dataclass
class PipelineResult:
    output_dir: str
    corpus_dir: str
    corpus_stats: dict
    metrics: dict[str, dict]  # model name → evaluate_rankings' metrics

    def summary(self) -> str:
        """What the main job prints: corpus size per split, then the metrics table."""
        lines = [f"demo corpus: {self.corpus_dir}"]
        for split, stats in self.corpus_stats["splits"].items():
            labels = stats.get("labels")
            histogram = f"  labels 0-4: {'/'.join(map(str, labels.values()))}" if labels else ""
            lines.append(f"  {split:<6} {stats['queries']:>7} queries {stats['pairs']:>9} pairs{histogram}")
        lines += ["", metrics_table(self.metrics), "", f"metrics: {io.join(self.output_dir, 'metrics.json')}"]
        return "\n".join(lines)


def run(config: PipelineConfig) -> PipelineResult:
    corpus_config = config.corpus
    if corpus_config.output_dir is None:
        corpus_config = dataclasses.replace(corpus_config, output_dir=io.join(config.output_dir, "corpus"))
    corpus_dir = demo.run(corpus_config)
    judgments = io.read_table(io.join(corpus_dir, "judgments", f"{config.evaluation.split}.parquet"))

    metrics = {}
    for name in config.evaluation.models:
        scores = _baseline_scores(name, judgments, config.evaluation.seed)
        io.write_table(scores, io.join(config.output_dir, "baselines", f"{name}.parquet"))
        result = evaluate_scores(judgments, scores, mrr_min_label=config.evaluation.mrr_min_label)
        metrics[name] = result.metrics
    io.write_json(metrics, io.join(config.output_dir, "metrics.json"))
    corpus_record = lineage.read_lineage(corpus_dir) or {}
    lineage.write_lineage(
        config.output_dir, "pipeline", to_dict(config), parents=[corpus_record.get("id", "")], metrics=metrics
    )
    stats = io.read_json(io.join(corpus_dir, "stats.json"))
    return PipelineResult(config.output_dir, corpus_dir, stats, metrics)


def _baseline_scores(name: str, judgments, seed: int):
    if name == "bm25":
        return baselines.bm25_scores(judgments)
    return baselines.random_scores(judgments, seed=seed)
