"""The main job: every stage in order on one output folder, ending with one comparison table.

    corpus → samples → teacher_cpt → teacher_sft → label → distill, distill_labels_only → compare

Each stage writes ``<output_dir>/<stage>``, named as in the config's ``stages`` and on the stage lines, with its
``disranker.json`` whose parents are the previous stages' ids, so the served student traces back to the clicks it
came from. Every stage skips itself when its folder already holds a finished record for the same config and inputs,
and labeling and training resume from their shards and checkpoints, so rerunning the same command after a crash
finishes the job without redoing finished work.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from disranker import lineage
from disranker.config import to_dict
from disranker.data import demo, io, schemas
from disranker.evaluation import compare
from disranker.evaluation.report import metrics_table
from disranker.labeling import pipeline as labeling
from disranker.pipeline import samples
from disranker.pipeline.config import PipelineConfig, load_stage
from disranker.pipeline.console import StageConsole, stage_console
from disranker.student import train as student_train
from disranker.teacher import train as teacher_train
from disranker.tracking import Tracker, in_pipeline

TABLE_COLUMNS = ("pnr", "ndcg@10", "mrr@10", "latency_ms_per_pair", "n_queries", "n_preference_pairs")


@dataclass
class PipelineResult:
    output_dir: str
    corpus_dir: str
    corpus_stats: dict
    folders: dict[str, str]  # stage name → its output folder
    metrics: dict[str, dict]  # model name → compare's metrics
    seconds: dict[str, float]  # stage name → wall time of this run (≈ 0 for a skipped stage)

    def summary(self) -> str:
        """What the main job prints: corpus, stage folders and times, the comparison table, how to serve."""
        lines = [f"demo corpus: {self.corpus_dir}"]
        for split, stats in self.corpus_stats["splits"].items():
            labels = stats.get("labels")
            histogram = f"  labels 0-4: {'/'.join(map(str, labels.values()))}" if labels else ""
            lines.append(f"  {split:<6} {stats['queries']:>7} queries {stats['pairs']:>9} pairs{histogram}")
        lines += ["", "stages:"]
        lines += [f"  {name:<20} {self.seconds[name]:>8.1f} s  {folder}" for name, folder in self.folders.items()]
        compare_dir = self.folders["compare"]
        lines += [
            "",
            metrics_table(self.metrics, TABLE_COLUMNS),
            "",
            f"report: {io.join(compare_dir, 'report.png')}   metrics: {io.join(compare_dir, 'metrics.json')}",
            f"serve the student: disranker serve --config serve/config.yaml model={self.folders['distill']}",
        ]
        return "\n".join(lines)


@in_pipeline()  # the job's tracker logs its stages; they do not log themselves (tracking.log_stage_alone)
def run(config: PipelineConfig) -> PipelineResult:
    config = dataclasses.replace(config, output_dir=io.absolute(config.output_dir))
    out = config.output_dir
    corpus_config = config.corpus
    if corpus_config.output_dir is None:
        corpus_config = dataclasses.replace(corpus_config, output_dir=io.join(out, "corpus"))
    corpus = corpus_config.output_dir
    sampled = config.samples
    sample_plan = {
        "train": (io.join(corpus, "judgments", "train.parquet"), sampled.label_queries),
        "pool": (io.join(corpus, "pool.parquet"), sampled.pool_queries),
        "dev": (io.join(corpus, "judgments", "dev.parquet"), sampled.dev_queries),
        "test": (io.join(corpus, "judgments", "test.parquet"), sampled.test_queries),
    }
    sample_dirs = {name: io.join(out, "samples", name) for name in sample_plan}
    # The teacher labels the pool sample, or the pool sample and the labeled queries' documents together.
    unlabeled = io.join(out, "samples", "pool_and_train") if sampled.distill_on_label_queries else sample_dirs["pool"]
    # Every stage config is checked before the first stage runs, so a bad key fails in seconds, not after training.
    stages = _stage_configs(config, corpus, sample_dirs, unlabeled)

    with stage_console(out, quiet=config.console == "stages") as console:
        tracker = Tracker(config.tracking, out, to_dict(config)) if config.tracking is not None else None
        try:
            folders, seconds = _run_stages(
                config, console, tracker, corpus_config, sample_plan, sample_dirs, unlabeled, stages
            )
        except BaseException:
            if tracker is not None:
                tracker.finish("FAILED")
            raise
        if tracker is not None:
            tracker.finish()
    metrics = io.read_json(io.join(folders["compare"], "metrics.json"))
    stats = io.read_json(io.join(corpus, "stats.json"))
    result = PipelineResult(out, corpus, stats, folders, metrics, seconds)
    # In its own folder, not in output_dir itself: stages look for their inputs' records in the folders above them,
    # and a record at the top would become every tiny model's "parent" and change their ids on the next run.
    summary_dir = io.join(out, "pipeline")
    io.write_text(result.summary() + "\n", io.join(summary_dir, "summary.txt"))
    compare_record = lineage.read_lineage(folders["compare"]) or {}
    record = {"models": metrics, "stage_seconds": {name: round(value, 1) for name, value in seconds.items()}}
    lineage.write_lineage(
        summary_dir, "pipeline", to_dict(config), parents=[compare_record.get("id", "")], metrics=record
    )
    return result


def _run_stages(
    config: PipelineConfig,
    console: StageConsole,
    tracker: Tracker | None,
    corpus_config: demo.DemoCorpusConfig,
    sample_plan: dict[str, tuple[str, int | None]],
    sample_dirs: dict[str, str],
    unlabeled: str,
    stages: dict,
) -> tuple[dict[str, str], dict[str, float]]:
    """Every stage in order: each one's output folder and wall time."""
    folders: dict[str, str] = {}
    seconds: dict[str, float] = {}
    sampled = config.samples

    def timed(name: str, step, *args) -> str:
        started = console.started(name)
        folders[name] = step(*args)
        seconds[name] = time.perf_counter() - started
        console.finished(name, started, folders[name])
        if tracker is not None:
            tracker.log_stage(name, folders[name])
        return folders[name]

    timed("corpus", demo.run, corpus_config)
    for name, (source, n_queries) in sample_plan.items():
        timed(f"sample_{name}", samples.write_sample, source, sample_dirs[name], n_queries, sampled.seed)
    if sampled.distill_on_label_queries:
        columns = list(schemas.POOL.names)
        timed(
            "sample_pool_and_train",
            samples.write_union,
            [sample_dirs["pool"], sample_dirs["train"]],
            unlabeled,
            columns,
        )
    for name, step in (
        ("teacher_cpt", teacher_train.run),
        ("teacher_sft", teacher_train.run),
        ("label", labeling.run),
        ("distill", student_train.run),
        ("distill_labels_only", student_train.run),
        ("compare", compare.run),
    ):
        timed(name, step, stages[name])
    return folders, seconds


def _stage_configs(config: PipelineConfig, corpus: str, sample_dirs: dict[str, str], to_label: str) -> dict:
    """Every stage's config with its inputs and outputs wired below ``output_dir``: the teacher SFT and the
    labels-only student train on the same sampled train judgments; the teacher labels ``to_label``."""
    out = config.output_dir
    cpt, sft = io.join(out, "teacher_cpt"), io.join(out, "teacher_sft")
    labels, student = io.join(out, "label"), io.join(out, "distill")
    labels_only = io.join(out, "distill_labels_only")
    dev = sample_dirs["dev"]
    wiring = {
        "teacher_cpt": {"stage": "cpt", "output_dir": cpt, "data.clicks": io.join(corpus, "clicks.parquet")},
        "teacher_sft": {
            "stage": "sft",
            "output_dir": sft,
            "model.spec": cpt,
            "data.train": sample_dirs["train"],
            "data.dev": dev,
            "data.max_examples": None,
        },
        "label": {"pool": to_label, "output_dir": labels, "teacher.spec": sft},
        "distill": {"mode": "teacher", "output_dir": student, "data.labels": labels, "data.dev": dev},
        "distill_labels_only": {
            "mode": "labels_only",
            "output_dir": labels_only,
            "data.judgments": sample_dirs["train"],
            "data.dev": dev,
            "data.max_queries": None,
        },
        "compare": {
            "output_dir": io.join(out, "compare"),
            "judgments": sample_dirs["test"],
            "models": [
                {"name": "bm25", "kind": "bm25"},
                {"name": "random", "kind": "random"},
                {"name": "teacher", "kind": "teacher", "path": sft},
                {"name": "student_labels_only", "kind": "student", "path": labels_only},
                {"name": "student_distilled", "kind": "student", "path": student},
            ],
        },
    }
    return {name: load_stage(config, name, stage_wiring) for name, stage_wiring in wiring.items()}
