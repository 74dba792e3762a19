"""The teacher training config: one dataclass for both stages (``stage: cpt`` and ``stage: sft``).

``load_config(TeacherConfig, "jobs/configs/teacher_sft.yaml", ["training.lr=1e-5"])`` builds it. The whole config
travels to every Ray Train worker as a plain dict (``to_dict``) and is rebuilt there with ``from_dict``, so a worker
never reads driver globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from disranker.config import ConfigError
from disranker.data import io
from disranker.models.lora import LoraSection
from disranker.models.precision import Precision
from disranker.runtime import RunSection, ScalingSection
from disranker.teacher.losses import RANK_LOSSES


@dataclass
class ModelSection:
    spec: str = "packaged:smollm2"  # HF folder, URI or "packaged:smollm2"; for SFT usually the CPT output folder
    trust_remote_code: bool = False  # only for model repos whose code you have read
    # None: full fine-tuning. Set: LoRA adapters on these modules (SFT also trains the score head in full); the export
    # merges them, so the folder loads as an ordinary model (models.lora).
    lora: LoraSection | None = None


@dataclass
class DataSection:
    clicks: str = ""  # CPT input: clicks table (Parquet file or folder, local or URI)
    train: str = ""  # SFT input: judgments used for training
    dev: str = ""  # SFT input: judgments evaluated each epoch (PNR, NDCG@10) to keep the best model
    max_examples: int | None = None  # smoke runs, per worker ⌈N / workers⌉: CPT clicks (whole queries), SFT queries

    def validate(self) -> None:
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError("'data.max_examples' must be ≥ 1")


@dataclass
class TrainingSection:
    lr: float = 2e-5  # peak learning rate (AdamW)
    # SFT: peak learning rate of the `score` layer (null: lr). The head starts random while the decoder is pretrained,
    # so at the decoder's small lr it barely moves within a short run.
    head_lr: float | None = None
    weight_decay: float = 0.0
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; when set it ends training before the epochs do
    batch_size: int = 8  # per worker and micro-step: CPT examples, or SFT query groups
    grad_accumulation: int = 1  # micro-steps per optimizer step
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    schedule: Literal["linear", "cosine", "constant"] = "linear"  # decay after warm-up
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    # fp32 | bf16 (autocast over fp32 master weights; DeepSpeed's bf16 under a preset) | auto (bf16 where the GPU or
    # the CPU — flags avx512_bf16 / amx_bf16 — multiplies it natively, else fp32)
    precision: Precision = "fp32"
    max_length: int = 256  # tokens per text (the teacher texts of models.text)
    group_size: int = 8  # SFT: docs per query group (fewer when a query has fewer judged docs)
    # SFT: each query's prompt once, its documents packed behind it (models/packing.py; same scores and gradients as
    # one padded row per document); false, or a model without a `score` layer: one row per document
    packed: bool = True
    # SFT packed rows: at most this many tokens. Attention runs per document, so a long row costs nothing extra; a
    # group that does not fit continues in the next row behind a copy of its prompt, and rows are padded to the longest
    pack_row_tokens: int = 2048
    rank_loss: str = "hinge"  # SFT loss: hinge (the paper's), ranknet or listwise
    margin: float = 1.0  # hinge margin in logit units
    eval_batch_size: int = 32  # SFT: pairs per forward when scoring the dev split
    select_metric: Literal["ndcg@10", "pnr"] = "ndcg@10"  # SFT: dev metric that picks the best epoch
    log_every_steps: int = 1  # loss-curve resolution (mean over the steps since the last point and over the workers)
    seed: int = 0

    def validate(self) -> None:
        if self.rank_loss not in RANK_LOSSES:
            raise ConfigError(f"'training.rank_loss' must be one of {', '.join(RANK_LOSSES)}, got {self.rank_loss!r}")
        if self.head_lr is not None and self.head_lr <= 0:
            raise ConfigError("'training.head_lr' must be > 0 or null (the decoder's lr)")
        if self.pack_row_tokens < self.max_length:
            raise ConfigError("'training.pack_row_tokens' must be ≥ 'training.max_length' (one document per row)")
        for key in ("epochs", "batch_size", "grad_accumulation", "group_size", "eval_batch_size", "log_every_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'training.{key}' must be ≥ 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("'training.max_steps' must be ≥ 1")
        if self.group_size < 2:
            raise ConfigError("'training.group_size' must be ≥ 2: a rank loss compares docs of one query")


@dataclass
class DeepSpeedSection:
    preset: Literal["zero1", "zero2", "zero3"] = "zero2"  # a JSON file in disranker/teacher/deepspeed/
    config_file: str | None = None  # your own DeepSpeed JSON instead of the preset ("auto" values are filled too)
    # ZeRO-3 keeps each parameter on one rank; the export gathers them into one 16-bit model on rank 0.


@dataclass
class TeacherConfig:
    stage: Literal["cpt", "sft"] = "cpt"  # cpt: causal LM on clicks; sft: rank-loss scorer on judgments
    output_dir: str = "outputs/demo/teacher_cpt"  # HF folder + disranker.json
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    scaling: ScalingSection = field(default_factory=ScalingSection)
    run: RunSection = field(default_factory=RunSection)
    deepspeed: DeepSpeedSection | None = None  # None: plain DDP

    def validate(self) -> None:
        for key in ("clicks",) if self.stage == "cpt" else ("train", "dev"):
            if not getattr(self.data, key):
                raise ConfigError(f"'data.{key}' is required for stage {self.stage}")


def deepspeed_preset_text(section: DeepSpeedSection) -> str:
    """The DeepSpeed JSON text the section selects (a packaged preset or the user's file)."""
    if section.config_file:
        fs, path = io.resolve(section.config_file)
        with fs.open_input_stream(path) as src:
            return src.read().decode()
    return resources.files("disranker.teacher").joinpath("deepspeed", f"{section.preset}.json").read_text()
