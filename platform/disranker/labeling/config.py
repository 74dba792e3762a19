"""The labeling stage's config: which pool, which teacher, which scorer backend, and how many actors.

Loaded with ``disranker.config.load_config(LabelConfig, "jobs/configs/label.yaml", overrides)``. On this 2-core
machine keep ``scaling.num_workers * scaling.cpus_per_worker`` below the CPUs Ray has: Ray Data's read tasks need a
free CPU, and two 1-CPU actors on 2 CPUs hang the pipeline forever (docs/operations.md), hence the 0.5 default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from disranker.config import ConfigError
from disranker.models.text import TEACHER_MAX_LENGTH
from disranker.runtime import ScalingSection


@dataclass
class TeacherSection:
    spec: str = "packaged:smollm2"  # HF *ForSequenceClassification(num_labels=1) folder, URI, or packaged:<name>
    id: str | None = None  # written to the `teacher` column; None: the folder's disranker.json id, else the spec
    max_length: int = TEACHER_MAX_LENGTH  # tokens per pair, EOS included (the summary is cut first)
    batch_size: int = 32  # pairs per forward pass, after sorting a call's rows by length


@dataclass
class ScoringSection:
    backend: Literal["transformers", "vllm", "student"] = "transformers"  # student: a cross-encoder (disranker score)
    rows_per_call: int = 256  # rows an actor receives per call; sorting happens inside a call, so > batch_size
    torch_threads: int = 1  # intra-op threads per actor (torch.set_num_threads); about cpus_per_worker rounded up
    # transformers backend: run each query's prompt once per call and share its key/value cache among the query's
    # documents (models.prefix_scoring); same scores, ~40 % fewer tokens on the demo pool. Needs pools whose rows of
    # one query are near each other (as built); false: every pair runs whole.
    share_query_prompt: bool = True
    # Teacher weights in fp32 or bf16 (both backends). auto: bf16 on a GPU; on a CPU with avx512_bf16 / AMX, bf16 if the
    # driver's check finds the teacher's bf16 scores ranking like its fp32 ones (labeling.precision_check), else fp32.
    # bf16 asked for on a CPU is checked the same way.
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    max_restarts: int = 3  # times Ray restarts a dead scoring actor
    max_task_retries: int = 3  # times a call lost with its actor is retried on the restarted one
    vllm_memory_fraction: float = 0.1  # vLLM gpu_memory_utilization; on CPU the fraction of RAM it reserves
    vllm_enforce_eager: bool = True  # no CUDA graphs / torch.compile: starts faster, needed on CPU

    def validate(self) -> None:
        if self.rows_per_call < 1 or self.torch_threads < 1:
            raise ConfigError("'scoring.rows_per_call' and 'scoring.torch_threads' must be ≥ 1")
        if self.max_restarts < 0 or self.max_task_retries < 0:
            raise ConfigError("'scoring.max_restarts' and 'scoring.max_task_retries' must be ≥ 0")
        if not 0 < self.vllm_memory_fraction <= 1:
            raise ConfigError("'scoring.vllm_memory_fraction' must be in (0, 1]")


def _default_scaling() -> ScalingSection:
    return ScalingSection(num_workers=2, cpus_per_worker=0.5)


@dataclass
class LabelConfig:
    pool: str = "outputs/demo/corpus/pool.parquet"  # pool table: one Parquet file or a folder of them (path or URI)
    output_dir: str = "outputs/demo/label"  # labels/, rejected/ shards and disranker.json (path or URI)
    rows_per_shard: int = 2000  # rows per output shard: the unit that is written atomically and skipped on rerun
    # Fail the run (after writing every shard) when more than this fraction of the pool ends up rejected.
    max_rejected_fraction: float = 0.05
    relabel: bool = False  # discard shards labeled from another pool, teacher or settings instead of refusing them
    teacher: TeacherSection = field(default_factory=TeacherSection)
    scoring: ScoringSection = field(default_factory=ScoringSection)
    # num_workers = scoring actors. A `scaling:` section in YAML starts from ScalingSection's own defaults
    # (cpus_per_worker 1.0), so set cpus_per_worker there too.
    scaling: ScalingSection = field(default_factory=_default_scaling)

    def validate(self) -> None:
        if self.rows_per_shard < 1:
            raise ConfigError("'rows_per_shard' must be ≥ 1")
        if not 0 <= self.max_rejected_fraction <= 1:
            raise ConfigError("'max_rejected_fraction' must be within 0–1")
        if self.teacher.batch_size < 1 or self.teacher.max_length < 8:
            raise ConfigError("'teacher.batch_size' must be ≥ 1 and 'teacher.max_length' ≥ 8")

    def score_relevant(self) -> dict:
        """The settings that change a score; shards written under other values are not reused (scaling is not)."""
        return {
            "backend": self.scoring.backend,
            "precision": self.scoring.precision,
            "max_length": self.teacher.max_length,
        }
