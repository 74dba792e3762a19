"""``disranker score``: any trained model's scores for any judgments or pool table, as a scores table.

    disranker score --model outputs/demo/distill --input judgments.parquet --out scores.parquet
    disranker evaluate --judgments judgments.parquet --scores scores.parquet

A table of at most ``local_max_rows`` rows is scored in this process with the comparison stage's scoring
(``compare.score_pairs_with``: length-sorted batches, a teacher's prompt once per query). A larger one goes through
the labeling stage on Ray Data (its shards, resume and exactly-once; ``scoring.backend`` ``transformers`` for a
teacher, ``student`` for a student), whose labels become the scores. Either way, rows that break the pool contract
(missing text, repeated keys) are not scored and are written, with the reason, beside the output
(``<out>.rejected.parquet``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from disranker import lineage
from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.data.schemas import SCORES
from disranker.data.validate import validate_table
from disranker.evaluation.compare import score_pairs_with, scores_table
from disranker.runtime import ScalingSection


@dataclass
class ScoreConfig:
    model: str = ""  # a trained teacher or student folder (local or URI)
    input: str = ""  # judgments or pool table (Parquet file or folder): query_id, query, doc_id, title, summary
    out: str = ""  # the scores table to write (one Parquet file)
    kind: Literal["teacher", "student"] = "student"
    name: str = ""  # the scores' `model` column; "" : the folder's lineage id (stage:id), else its folder name
    batch_size: int = 32  # pairs per forward pass
    max_length: int = 256  # tokens per pair
    local_max_rows: int = 50_000  # more rows than this: Ray Data actors (the labeling stage)
    labeling_dir: str = ""  # where the Ray Data route keeps its shards (it resumes from them); "": <out>.labeling
    scaling: ScalingSection = dataclasses.field(default_factory=lambda: ScalingSection(cpus_per_worker=0.5))

    def validate(self) -> None:
        for key in ("model", "input", "out"):
            if not getattr(self, key):
                raise ConfigError(f"'{key}' is required")
        if not self.out.endswith(".parquet"):
            raise ConfigError(f"'out' {self.out!r} must name a .parquet file")
        if self.batch_size < 1 or self.max_length < 8:
            raise ConfigError("'batch_size' must be ≥ 1 and 'max_length' ≥ 8")


@dataclass
class ScoreResult:
    out: str
    rows: int  # rows of the input
    scored: int
    rejected: int
    route: str  # "local" or "ray-data"
    seconds: float

    @property
    def summary(self) -> str:
        return (
            f"scored {self.scored} of {self.rows} rows ({self.rejected} rejected) with {self.route}, "
            f"{self.scored / self.seconds if self.seconds else 0:.1f} pairs/s; scores: {self.out}"
        )


def run(config: ScoreConfig) -> ScoreResult:
    name = config.name or _model_name(config.model)
    started = time.perf_counter()
    rows = io.read_table(config.input, columns=["query_id"]).num_rows
    if rows > config.local_max_rows:
        scores, rejected = _score_on_ray(config, name)
        route = "ray-data"
    else:
        checked = validate_table(io.read_table(config.input), "pool")
        values, _ = score_pairs_with(config.kind, config.model, checked.valid, config.batch_size, config.max_length)
        scores, rejected, route = scores_table(checked.valid, values, name), checked.rejected, "local"
    io.write_table(scores, config.out)
    if rejected.num_rows:
        io.write_table(rejected, config.out.removesuffix(".parquet") + ".rejected.parquet")
    return ScoreResult(config.out, rows, scores.num_rows, rejected.num_rows, route, time.perf_counter() - started)


def _score_on_ray(config: ScoreConfig, name: str) -> tuple[pa.Table, pa.Table]:
    from disranker.labeling import LabelConfig
    from disranker.labeling import pipeline as labeling

    folder = config.labeling_dir or config.out.removesuffix(".parquet") + ".labeling"
    label_config = load_config(LabelConfig, overrides=[
        f"pool={config.input}", f"output_dir={folder}", f"teacher.spec={config.model}", f"teacher.id={name}",
        f"teacher.batch_size={config.batch_size}", f"teacher.max_length={config.max_length}", "max_rejected_fraction=1",
        "scoring.precision=fp32",  # scores to evaluate are fp32, as the comparison's (and the local route's)
        f"scoring.backend={'transformers' if config.kind == 'teacher' else 'student'}",
    ])  # fmt: skip
    label_config = dataclasses.replace(label_config, scaling=config.scaling)
    labeling.run(label_config)
    labels = io.read_table(io.join(folder, "labels"))
    columns = [labels["query_id"], labels["doc_id"], labels["teacher_score"], labels["teacher"]]
    scores = pa.Table.from_arrays(columns, schema=SCORES)
    return scores, io.read_table(io.join(folder, "rejected"))


def _model_name(spec: str) -> str:
    record = lineage.record_above(spec, levels=1)
    return f"{record['stage']}:{record['id']}" if record else spec.rstrip("/").rsplit("/", 1)[-1]
