"""The distillation stage's inputs: paths filled from the demo corpus, and the tiny inputs a smoke run builds itself.

A smoke config sets ``data.demo`` (the tiny WordNet corpus, built when missing), ``student.build_tiny`` (a tiny random
BERT at ``student.model``) and ``data.tiny_teacher``: when the labels table is missing, the corpus's pool is scored
by a tiny *random* Llama scorer built in that folder. Its scores are deterministic (seeded) but carry no relevance
signal; they exercise the labels contract and the real teacher-scoring code path, nothing more. Real runs read the
labeling stage's output instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from disranker.data import demo, io
from disranker.data.schemas import LABELS
from disranker.models.loading import build_tiny_student, build_tiny_teacher, load_teacher_scorer, score_pairs_teacher
from disranker.models.text import pair_texts
from disranker.student.config import DistillConfig

TINY_TEACHER_SEED = 0


def prepare_inputs(config: DistillConfig) -> DistillConfig:
    """Build what a smoke config asks for when missing, and return the config with every path filled in."""
    data = config.data
    if data.demo is not None:
        corpus = demo.run(data.demo)
        data = dataclasses.replace(
            data,
            judgments=data.judgments or io.join(corpus, "judgments", "train.parquet"),
            dev=data.dev or io.join(corpus, "judgments", "dev.parquet"),
        )
        if data.tiny_teacher and config.mode == "teacher" and not io.exists(data.labels):
            write_tiny_teacher_labels(io.join(corpus, "pool.parquet"), data.labels, data.tiny_teacher)
    if config.student.build_tiny and not (Path(config.student.model) / "config.json").is_file():
        build_tiny_student(config.student.model)
    data = dataclasses.replace(
        data, labels=io.absolute(data.labels), judgments=io.absolute(data.judgments), dev=io.absolute(data.dev)
    )
    student = dataclasses.replace(config.student, model=io.absolute_model_spec(config.student.model))
    return dataclasses.replace(config, data=data, student=student, output_dir=io.absolute(config.output_dir))


def write_tiny_teacher_labels(pool_uri: str, labels_uri: str, teacher_dir: str, batch_size: int = 64) -> str:
    """Score a pool table with a tiny random teacher scorer and write it as a labels table (one shard)."""
    if not (Path(teacher_dir) / "config.json").is_file():
        build_tiny_teacher(teacher_dir)
    pool = io.read_table(pool_uri)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_TEACHER_SEED)  # the fresh score head is the only random part
        model, tokenizer = load_teacher_scorer(teacher_dir)
    scores = score_pairs_teacher(
        model,
        tokenizer,
        *pair_texts(pool),
        batch_size=batch_size,
    )
    table = pool.select(["query_id", "query", "doc_id", "title", "summary"])
    table = table.append_column("teacher_score", pa.array(scores.astype(np.float32)))
    table = table.append_column("teacher", pa.array([f"tiny-random:{Path(teacher_dir).name}"] * len(table)))
    target = labels_uri if labels_uri.endswith(".parquet") else io.join(labels_uri, "part-00000.parquet")
    return io.write_table(table.cast(LABELS), target)
