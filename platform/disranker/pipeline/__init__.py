"""The main job (``disranker pipeline``): every stage in order, wired by one output folder."""

from disranker.pipeline.config import (
    SIZE_CONFIGS,
    PipelineConfig,
    SampleSection,
    StageEntry,
    StagesSection,
    config_for_size,
)
from disranker.pipeline.runner import PipelineResult, run

__all__ = [
    "SIZE_CONFIGS",
    "PipelineConfig",
    "PipelineResult",
    "SampleSection",
    "StageEntry",
    "StagesSection",
    "config_for_size",
    "run",
]
