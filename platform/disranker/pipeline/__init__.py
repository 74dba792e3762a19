"""The main job (``disranker pipeline``): every stage in order, wired by one output folder."""

from disranker.pipeline.config import PipelineConfig, SampleSection, StageEntry, StagesSection
from disranker.pipeline.runner import PipelineResult, run

__all__ = ["PipelineConfig", "PipelineResult", "SampleSection", "StageEntry", "StagesSection", "run"]
