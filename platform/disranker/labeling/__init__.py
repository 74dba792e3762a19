"""Offline teacher labeling: score every pool pair with the teacher on Ray Data, into Parquet label shards.

``run(LabelConfig(...)) -> output_dir`` writes ``labels/*.parquet`` (pool columns + ``teacher_score`` raw logit +
``teacher``), ``rejected/*.parquet`` (rows with reasons) and ``disranker.json`` (counts, pairs/s, wall time).
Backends (``scoring.backend``): ``transformers`` or ``vllm``; see ``labeling.backends``.
"""

from disranker.labeling.config import LabelConfig, ScoringSection, TeacherSection
from disranker.labeling.pipeline import run, summary_line

__all__ = ["LabelConfig", "ScoringSection", "TeacherSection", "run", "summary_line"]
