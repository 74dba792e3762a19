"""The distillation config, e.g. ``load_config(DistillConfig, "distill.yaml", ["loss.margin_weight=2"])``.

The whole config travels to every Ray Train worker as a plain dict (``to_dict``) and is rebuilt there with
``from_dict``, so a worker never reads driver globals.

Two modes:

- ``teacher`` (the paper's): targets are the labels table's ``teacher_score`` (raw teacher logits);
- ``labels_only`` (the baseline the paper improves on): the same student, loss and loop, with each judgment's human
  grade (0–4, as a float) in place of the teacher score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from disranker.config import ConfigError
from disranker.models.precision import Precision
from disranker.runtime import RunSection, ScalingSection
from disranker.student.losses import NORMALIZE_METHODS


@dataclass
class DataSection:
    labels: str = ""  # teacher mode: labels table (pool columns + teacher_score + teacher), file or shard folder
    judgments: str = ""  # labels_only mode: judgments whose human grades are the targets
    dev: str = ""  # dev judgments scored each epoch (PNR, NDCG@10) to keep the best checkpoint; "" = no dev pass
    max_queries: int | None = None  # ⌈N / workers⌉ queries per worker only (its smallest query-id hashes; every run)

    def validate(self) -> None:
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError("'data.max_queries' must be ≥ 1")


@dataclass
class StudentSection:
    model: str = "packaged:minilm"  # "packaged:minilm", an HF encoder folder or a URI to one
    max_length: int = 256  # tokens per (query, document) pair; the longer side (mostly the document) is cut first


@dataclass
class LossSection:
    name: Literal["hybrid", "point", "margin", "listwise_kd"] = "hybrid"  # hybrid = point + λ·margin (DisRanker)
    margin_weight: float = 1.0  # λ of the hybrid loss
    pairs: Literal["all", "sampled"] = "all"  # Margin-MSE over all pairs of a group, or a sample per group
    pairs_per_group: int = 16  # with pairs: sampled
    # Teacher-score rescaling per group before the loss: none (raw logits, the paper) | zscore_per_group | minmax_...
    normalize: Literal["none", "zscore_per_group", "minmax_per_group"] = "none"
    temperature: float = 1.0  # listwise_kd only

    def validate(self) -> None:
        if self.normalize not in NORMALIZE_METHODS:
            raise ConfigError(f"'loss.normalize' must be one of {', '.join(NORMALIZE_METHODS)}")
        if self.margin_weight < 0:
            raise ConfigError("'loss.margin_weight' must be ≥ 0")
        if self.pairs_per_group < 1:
            raise ConfigError("'loss.pairs_per_group' must be ≥ 1")
        if self.temperature <= 0:
            raise ConfigError("'loss.temperature' must be > 0")


@dataclass
class TrainingSection:
    lr: float = 3e-5  # peak learning rate (AdamW)
    weight_decay: float = 0.01
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; when set it ends training before the epochs do
    groups_per_batch: int = 8  # query groups per worker and step (the global batch is × num_workers)
    group_size: int = 8  # docs per group; a query with more docs gives several groups, the last one padded
    warmup_ratio: float = 0.1  # linear warm-up over this fraction of the steps, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    log_every_steps: int = 10  # loss-curve resolution (mean over the steps since the last point and over the workers)
    eval_batch_size: int = 64  # pairs per forward when scoring the dev split
    select_metric: Literal["ndcg@10", "pnr"] = "ndcg@10"  # dev metric that picks the best epoch
    seed: int = 0  # model head init, group order and pair sampling
    # fp32 | bf16 (autocast over fp32 master weights; losses in fp32) | auto (bf16 where the GPU or the CPU — flags
    # avx512_bf16 / amx_bf16 — multiplies it natively)
    precision: Precision = "fp32"

    def validate(self) -> None:
        for key in ("epochs", "groups_per_batch", "log_every_steps", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'training.{key}' must be ≥ 1")
        if self.group_size < 2:
            raise ConfigError("'training.group_size' must be ≥ 2: Margin-MSE compares docs of one query")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("'training.max_steps' must be ≥ 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("'training.warmup_ratio' must be in [0, 1)")


@dataclass
class EvaluationSection:
    mrr_min_label: int = 4  # MRR@10 looks for the exact synset (label 4) in the demo


@dataclass
class DistillConfig:
    output_dir: str = "outputs/demo/distill"  # HF folder of the best student + disranker.json
    mode: Literal["teacher", "labels_only"] = "teacher"
    data: DataSection = field(default_factory=DataSection)
    student: StudentSection = field(default_factory=StudentSection)
    loss: LossSection = field(default_factory=LossSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    scaling: ScalingSection = field(default_factory=ScalingSection)
    run: RunSection = field(default_factory=RunSection)

    def validate(self) -> None:
        if not self.output_dir:
            raise ConfigError("'output_dir' is required: where the student folder is written")
        if self.mode == "teacher" and not self.data.labels:
            raise ConfigError("'data.labels' is required in mode 'teacher': the labels table the student learns from")
        if self.mode == "labels_only" and not self.data.judgments:
            raise ConfigError("'data.judgments' is required in mode 'labels_only': the human grades it learns from")

    @property
    def train_table(self) -> str:
        """The table the student trains on in this mode."""
        return self.data.labels if self.mode == "teacher" else self.data.judgments

    @property
    def target_column(self) -> str:
        return "teacher_score" if self.mode == "teacher" else "label"
