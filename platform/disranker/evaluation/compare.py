"""The model comparison stage: score one test split with every model and draw the paper's report.

``run(CompareConfig) -> output_dir`` scores the judgments with each configured model — BM25, a random order, teacher
``*ForSequenceClassification`` folders and student cross-encoder folders — and writes into ``output_dir``:

- ``<name>.parquet`` (the ``scores`` contract) and ``<name>.run`` (TREC run) per model;
- ``metrics.json``: per model, ``evaluate_scores``' metrics plus ``kind``, ``scoring_s`` (wall time of scoring alone,
  model loading excluded) and ``latency_ms_per_pair`` (= scoring_s / pairs); students also get their Pearson and
  Spearman correlation with the first teacher's scores;
- ``report.png``: metrics table, teacher vs student score distributions, per-pair scatter, training loss curves
  (``evaluation.report_plots``);
- ``disranker.json`` whose parents are the lineage ids of the judgments' corpus and of every model folder that has one.

Judgment rows that break the contract are not scored; their count is each model's ``n_rejected``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch

from disranker import lineage, tracking
from disranker.config import ConfigError, to_dict
from disranker.data import io, schemas
from disranker.data.schemas import SCORES
from disranker.data.trec import write_trec_run
from disranker.data.validate import validate_table
from disranker.evaluation import baselines, correlation
from disranker.evaluation.evaluate import evaluate_scores
from disranker.evaluation.report_plots import build_report, save_report
from disranker.models.loading import load_student, load_teacher_scorer, score_pairs_student
from disranker.models.prefix_scoring import score_pairs_teacher_shared_prefix

STAGE = "compare"
# A name becomes a file stem and a TREC run tag: no whitespace, no path separators.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")
# What the job and the CLI print (metrics.json holds every metric).
SUMMARY_COLUMNS = ("pnr", "ndcg@10", "mrr@10", "pairwise_accuracy", "latency_ms_per_pair", "n_preference_pairs")


@dataclass
class ModelEntry:
    name: str = ""  # row label in metrics.json and the report; file stem of <name>.parquet / <name>.run
    kind: Literal["bm25", "random", "teacher", "student"] = "bm25"
    path: str = ""  # teacher / student: model spec (HF folder, URI or packaged:<name>); unused by bm25 / random


@dataclass
class CompareConfig:
    output_dir: str = "outputs/demo/compare"  # scores, run files, metrics.json, report.png, disranker.json
    judgments: str = ""  # the test split every model is scored on
    models: list[ModelEntry] = field(default_factory=list)
    batch_size: int = 32  # pairs per forward pass (teacher and student)
    max_length: int = 256  # tokens per pair for teacher and student inputs
    mrr_min_label: int = 4  # MRR@10 looks for the exact synset (label 4) in the demo
    seed: int = 0  # the random baseline's seed, and of any freshly initialised score head (an untrained model)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    # Where a teacher or student is scored. "ray": a Ray task of its own, in a fresh worker process holding
    # `scoring_cpus` CPUs and `scoring_gpus` GPUs (on a cluster a worker node, not the job's driver; on one machine
    # away from a pipeline driver that has run the training stages, which scored ~10x slower than a fresh process:
    # docs/operations.md). "local": this process, no Ray (unit tests, a laptop without Ray).
    run_models_on: Literal["ray", "local"] = "ray"
    scoring_cpus: float | None = None  # None: every CPU of the largest node
    scoring_gpus: float = 0.0

    def validate(self) -> None:
        if not self.output_dir:
            raise ConfigError("'output_dir' is required: where the comparison is written")
        if not self.judgments:
            raise ConfigError("'judgments' is required: the test split every model is scored on")
        if not self.models:
            raise ConfigError("'models' is empty: list at least one {name, kind, path}")
        seen: set[str] = set()
        for i, entry in enumerate(self.models):
            if not NAME_PATTERN.match(entry.name):
                raise ConfigError(f"'models[{i}].name' {entry.name!r} must be letters, digits and _ . + - only")
            if entry.name in seen:
                raise ConfigError(f"'models[{i}].name' {entry.name!r} is used twice: names must be unique")
            seen.add(entry.name)
            if entry.kind in ("teacher", "student") and not entry.path:
                raise ConfigError(f"'models[{i}].path' is required for a {entry.kind}: its model folder or spec")
        if self.scoring_cpus is not None and self.scoring_cpus <= 0:
            raise ConfigError("'scoring_cpus' must be > 0 (or null: every CPU of the largest node)")
        if self.scoring_gpus < 0:
            raise ConfigError("'scoring_gpus' must be ≥ 0")
        if self.device == "cuda" and self.run_models_on == "ray" and self.scoring_gpus == 0:
            raise ConfigError("'device' cuda on Ray needs 'scoring_gpus' > 0: a Ray task without GPUs sees none")
        if self.batch_size < 1:
            raise ConfigError("'batch_size' must be ≥ 1")
        if self.max_length < 8:
            raise ConfigError("'max_length' must be ≥ 8 tokens")
        if not schemas.MIN_LABEL <= self.mrr_min_label <= schemas.MAX_LABEL:
            raise ConfigError(f"'mrr_min_label' must be within {schemas.MIN_LABEL}–{schemas.MAX_LABEL}")


def run(config: CompareConfig) -> str:
    """Score, evaluate and report every model (or skip when ``output_dir`` already holds this comparison)."""
    models = [e.path for e in config.models if e.kind in ("teacher", "student")]
    parents = lineage.parent_ids(tables=[config.judgments], models=models)
    expected = lineage.lineage_id(STAGE, to_dict(config), parents)
    if lineage.is_complete(config.output_dir, expected):
        return config.output_dir

    judgments = validate_table(io.read_table(config.judgments), "judgments").valid
    if judgments.num_rows == 0:
        raise ValueError(f"{config.judgments}: no judgment row keeps the contract, nothing to score")
    scores: dict[str, np.ndarray] = {}
    metrics: dict[str, dict] = {}
    for entry in config.models:
        values, seconds = score_model(entry, judgments, config)
        table = scores_table(judgments, values, entry.name)
        io.write_table(table, io.join(config.output_dir, f"{entry.name}.parquet"))
        write_trec_run(table, io.join(config.output_dir, f"{entry.name}.run"))
        result = evaluate_scores(judgments, table, mrr_min_label=config.mrr_min_label)
        metrics[entry.name] = {
            **result.metrics,
            "kind": entry.kind,
            "scoring_s": seconds,
            "latency_ms_per_pair": 1000.0 * seconds / judgments.num_rows,
        }
        scores[entry.name] = values
    _add_teacher_correlations(config.models, scores, metrics)
    io.write_json(metrics, io.join(config.output_dir, "metrics.json"))

    curves = {e.name: read_loss_curve(e.path) for e in config.models if e.kind == "student"}
    figure = build_report(metrics, scores, {e.name: e.kind for e in config.models}, curves)
    save_report(figure, io.join(config.output_dir, "report.png"))
    lineage.write_lineage(config.output_dir, STAGE, to_dict(config), parents=parents, metrics=metrics)
    tracking.log_stage_alone(config.output_dir)
    return config.output_dir


def score_model(entry: ModelEntry, judgments: pa.Table, config: CompareConfig) -> tuple[np.ndarray, float]:
    """One score per judgment row (input order) and the wall time of the scoring itself, loading excluded."""
    if entry.kind in ("bm25", "random"):
        started = time.perf_counter()
        if entry.kind == "bm25":
            table = baselines.bm25_scores(judgments, model=entry.name)
        else:
            table = baselines.random_scores(judgments, seed=config.seed, model=entry.name)
        return table["score"].to_numpy(), time.perf_counter() - started
    args = (entry.kind, entry.path, judgments, config.batch_size, config.max_length, config.device, config.seed)
    if config.run_models_on == "local":
        return score_pairs_with(*args)
    return _score_in_ray_task(args, config.scoring_cpus, config.scoring_gpus)


def _score_in_ray_task(args: tuple, cpus: float | None, gpus: float) -> tuple[np.ndarray, float]:
    """``score_pairs_with(*args)`` in a fresh Ray worker process (``max_calls=1``: no state of an earlier task)."""
    import ray

    from disranker.runtime import ensure_ray

    ensure_ray()
    if cpus is None:
        cpus = max(node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"])
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_calls=1)(_score_with_threads)
    return ray.get(task.remote(math.ceil(cpus), *args))


def _score_with_threads(threads: int, *args) -> tuple[np.ndarray, float]:
    torch.set_num_threads(threads)  # a fractional CPU share still gets one thread
    return score_pairs_with(*args)


def score_pairs_with(
    kind: str, spec: str, table: pa.Table, batch_size: int, max_length: int, device: str = "auto", seed: int = 0
) -> tuple[np.ndarray, float]:
    """A teacher's or a student's score of every (query, title, summary) row of ``table``, in order, and the seconds
    the scoring took (loading excluded). A teacher runs each query's prompt once (``prefix_scoring``)."""
    load, score = (
        (load_teacher_scorer, score_pairs_teacher_shared_prefix)
        if kind == "teacher"
        else (load_student, score_pairs_student)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # a folder without a trained head gets a fresh one: make it reproducible
        model, tokenizer = load(spec)
    model.to(_device(device))
    texts = [table[column].to_pylist() for column in ("query", "title", "summary")]
    started = time.perf_counter()
    values = score(model, tokenizer, *texts, batch_size=batch_size, max_length=max_length)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return values, time.perf_counter() - started


def scores_table(judgments: pa.Table, values: np.ndarray, name: str) -> pa.Table:
    """The ``scores`` contract for one model's scores, aligned with the judgments' rows."""
    return pa.Table.from_arrays(
        [
            judgments["query_id"],
            judgments["doc_id"],
            pa.array(np.asarray(values, dtype=np.float32)),
            pa.array([name] * judgments.num_rows, pa.string()),
        ],
        schema=SCORES,
    )


def read_loss_curve(student_path: str) -> list[dict]:
    """The student's training loss curve (``metrics.loss_curve`` of its ``disranker.json``); [] when it has none."""
    if "://" not in student_path and not Path(student_path).is_dir():
        return []
    record = lineage.read_lineage(student_path) or {}
    return list(record.get("metrics", {}).get("loss_curve", []))


def _add_teacher_correlations(models: list[ModelEntry], scores: dict, metrics: dict) -> None:
    """Each student's agreement with the first teacher, pair by pair (how closely distillation copied it)."""
    teacher = next((e.name for e in models if e.kind == "teacher"), None)
    if teacher is None:
        return
    for entry in (e for e in models if e.kind == "student"):
        x, y = scores[teacher], scores[entry.name]
        values = {"teacher_pearson": correlation.pearson(x, y), "teacher_spearman": correlation.spearman(x, y)}
        # null, not NaN, for a constant side: metrics.json stays strict JSON
        metrics[entry.name].update({"reference_teacher": teacher, **{k: _or_none(v) for k, v in values.items()}})


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else value


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)
