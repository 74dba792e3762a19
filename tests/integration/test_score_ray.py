"""``disranker score`` on Ray Data (the labeling stage's actors) gives the scores the in-process route gives."""

from __future__ import annotations

import numpy as np
import pytest

from disranker.config import load_config
from disranker.data import demo, io
from disranker.evaluation.score import ScoreConfig, run
from disranker.testing.tiny import build_tiny_scorer, build_tiny_student

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_ray_data_route_equals_the_local_route(ray_start_2_cpus, tmp_path, kind):
    corpus = demo.run(demo.DemoCorpusConfig(size="tiny", output_dir=str(tmp_path / "corpus")))
    table = io.join(corpus, "judgments", "test.parquet")
    model = build_tiny_scorer(tmp_path / "m") if kind == "teacher" else build_tiny_student(tmp_path / "m")
    common = [
        f"model={model}",
        f"input={table}",
        f"kind={kind}",
        "max_length=96",
        "scaling.num_workers=2",
        "scaling.cpus_per_worker=0.5",
    ]
    local = run(load_config(ScoreConfig, overrides=[*common, f"out={tmp_path / 'local.parquet'}"]))
    on_ray = run(load_config(ScoreConfig, overrides=[*common, f"out={tmp_path / 'ray.parquet'}", "local_max_rows=0"]))
    assert (local.route, on_ray.route) == ("local", "ray-data")
    assert on_ray.scored == local.scored == io.read_table(table).num_rows
    key = [("query_id", "ascending"), ("doc_id", "ascending")]
    a = io.read_table(tmp_path / "local.parquet").sort_by(key)
    b = io.read_table(tmp_path / "ray.parquet").sort_by(key)
    assert a["doc_id"].to_pylist() == b["doc_id"].to_pylist() and set(b["model"].to_pylist()) == {"m"}
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-4, atol=1e-5)
