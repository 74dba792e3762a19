"""The main job's config: the corpus, the query samples that fit the machine, and one entry per stage.

Each stage entry names that stage's own YAML file plus dotted overrides, so a stage's settings live in one place
(``jobs/configs/<stage>.yaml``) whether it runs alone or inside the pipeline. The pipeline then wires the stages
together: every path that connects one stage to the next (``WIRED_KEYS``) is set by the pipeline from ``output_dir``,
and an override that tries to set one is an error rather than being silently replaced. Override values may use
``{output_dir}``, the pipeline's output folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from disranker.config import ConfigError, load_config
from disranker.data import demo
from disranker.evaluation.compare import CompareConfig
from disranker.labeling.config import LabelConfig
from disranker.student.config import DistillConfig
from disranker.teacher.config import TeacherConfig
from disranker.tracking import TrackingSection

# Keys each stage gets from the pipeline (where its inputs and outputs are, and which mode it runs in).
WIRED_KEYS: dict[str, tuple[str, ...]] = {
    "teacher_cpt": ("stage", "output_dir", "data.clicks"),
    "teacher_sft": ("stage", "output_dir", "model.spec", "data.train", "data.dev", "data.max_examples"),
    "label": ("pool", "output_dir", "teacher.spec"),
    "distill": ("mode", "output_dir", "data.labels", "data.dev"),
    "distill_labels_only": ("mode", "output_dir", "data.judgments", "data.dev", "data.max_queries"),
    "compare": ("output_dir", "judgments", "models"),
}
STAGE_CLASSES: dict[str, type] = {
    "teacher_cpt": TeacherConfig,
    "teacher_sft": TeacherConfig,
    "label": LabelConfig,
    "distill": DistillConfig,
    "distill_labels_only": DistillConfig,
    "compare": CompareConfig,
}


@dataclass
class StageEntry:
    config: str = ""  # the stage's YAML file (relative to the working directory); "": DEFAULT_STAGE_FILES
    overrides: list[str] = field(default_factory=list)  # dotted key=value, applied after the file


@dataclass
class SampleSection:
    """Queries each stage sees, as seeded samples; ``null`` keeps every query.

    The protocol is the paper's and it is fair by construction: one human-label budget (``label_queries`` train
    queries with all their judgments) trains both the teacher SFT and the labels-only student, exactly the same rows;
    the teacher's CPT reads the click log (a separate, cheaper signal); the distilled student learns from the
    teacher's scores on ``pool_queries`` unlabeled pool queries (plus, with ``distill_on_label_queries``, the teacher's
    scores on the labeled queries' documents). Every model is picked on ``dev_queries``; ``test_queries`` are only
    scored by the final comparison."""

    label_queries: int | None = (
        None  # train queries with human grades: the teacher SFT's and labels-only student's data
    )
    pool_queries: int | None = None  # unlabeled pool queries the teacher labels (the distilled student's training set)
    distill_on_label_queries: bool = False  # also distill on the teacher's scores of the labeled queries' documents
    dev_queries: int | None = None  # dev queries scored after each training epoch (teacher SFT, students)
    test_queries: int | None = None  # test queries every model is compared on
    seed: int = 0

    def validate(self) -> None:
        for key in ("label_queries", "pool_queries", "dev_queries", "test_queries"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"'samples.{key}' must be ≥ 1 or null (all queries)")


# `--size` picks one of these pipeline files (relative to the repository root, like the stage files they name).
SIZE_CONFIGS: dict[str, str] = {
    "tiny": "jobs/configs/pipeline_smoke.yaml",  # tiny random models and corpus: every stage in a few minutes
    "demo": "jobs/configs/demo.yaml",  # the packaged real models on the small corpus, sized for 2 CPU cores
}


def config_for_size(size: str | None, config: str | None) -> str | None:
    """The pipeline file to load: ``config`` as given, or the one ``size`` names; both at once is an error."""
    if size is None:
        return config
    if size not in SIZE_CONFIGS:
        raise ConfigError(f"--size {size!r}: expected one of {', '.join(SIZE_CONFIGS)}")
    if config is not None:
        raise ConfigError(f"give --config or --size, not both (--size {size} means --config {SIZE_CONFIGS[size]})")
    return SIZE_CONFIGS[size]


# The stage file each entry reads when its `config` is left empty.
DEFAULT_STAGE_FILES: dict[str, str] = {
    "teacher_cpt": "jobs/configs/teacher_cpt.yaml",
    "teacher_sft": "jobs/configs/teacher_sft.yaml",
    "label": "jobs/configs/label.yaml",
    "distill": "jobs/configs/distill.yaml",
    # The baseline the paper improves on: the same student config trained on the human grades the teacher SFT had.
    "distill_labels_only": "jobs/configs/distill.yaml",
    "compare": "jobs/configs/compare.yaml",
}


@dataclass
class StagesSection:
    # The distillation entries' names before issue 17 (one name per stage): read as the new ones, with a warning, so
    # pipeline files written before the rename keep working for one release (disranker.config.from_dict).
    RENAMED: ClassVar[dict[str, str]] = {"student": "distill", "student_labels_only": "distill_labels_only"}

    teacher_cpt: StageEntry = field(default_factory=StageEntry)
    teacher_sft: StageEntry = field(default_factory=StageEntry)
    label: StageEntry = field(default_factory=StageEntry)
    distill: StageEntry = field(default_factory=StageEntry)
    distill_labels_only: StageEntry = field(default_factory=StageEntry)
    compare: StageEntry = field(default_factory=StageEntry)

    def validate(self) -> None:
        for name, wired in WIRED_KEYS.items():
            entry: StageEntry = getattr(self, name)
            for override in entry.overrides:
                key = override.partition("=")[0].strip()
                clash = next((w for w in wired if key == w or key.startswith(f"{w}.")), None)
                if clash is not None:
                    raise ConfigError(
                        f"'stages.{name}.overrides': '{key}' is set by the pipeline (it wires '{clash}' from "
                        "output_dir and the previous stage); set the pipeline's output_dir instead"
                    )


@dataclass
class PipelineConfig:
    output_dir: str = "outputs/demo"  # every stage writes into a folder below this one (path or URI)
    corpus: demo.DemoCorpusConfig = field(default_factory=demo.DemoCorpusConfig)
    samples: SampleSection = field(default_factory=SampleSection)
    stages: StagesSection = field(default_factory=StagesSection)
    # stages: the terminal shows one line per stage start and end, everything else goes to <output_dir>/logs/
    # (pipeline.console); all: every library's and Ray worker's output on the terminal as it comes.
    console: Literal["stages", "all"] = "stages"
    # MLflow: one run for the job, a child run per stage made from its disranker.json (disranker.tracking); the default
    # store is sqlite:///<output_dir>/mlflow.db; null: no tracking.
    tracking: TrackingSection | None = field(default_factory=TrackingSection)

    def validate(self) -> None:
        if self.tracking is not None:
            self.tracking.resolve_uri(self.output_dir)  # a URI output_dir needs a tracking server: fail before training


def load_stage(config: PipelineConfig, name: str, wiring: dict[str, Any]) -> Any:
    """The stage's config: its YAML file, then the pipeline's wiring, then the entry's overrides."""
    entry: StageEntry = getattr(config.stages, name)
    path = entry.config or DEFAULT_STAGE_FILES[name]
    wired = [f"{key}={_yaml_value(value)}" for key, value in wiring.items()]
    user = [o.replace("{output_dir}", config.output_dir) for o in entry.overrides]
    try:
        return load_config(STAGE_CLASSES[name], path, [*wired, *user])
    except (ConfigError, FileNotFoundError) as exc:
        raise ConfigError(f"stages.{name} ({path}): {exc}") from exc


def _yaml_value(value: Any) -> str:
    """A wired value as override text: paths quoted so YAML keeps them text, None as null, lists as flow YAML."""
    return "null" if value is None else json.dumps(value, ensure_ascii=False)
