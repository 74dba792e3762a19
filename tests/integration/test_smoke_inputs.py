"""`disranker data build-smoke-inputs`: the tiny inputs every smoke config reads, built once and then left alone."""

from __future__ import annotations

import numpy as np
import pytest

from disranker.data import io
from disranker.models.loading import load_student, load_teacher_lm, load_teacher_scorer
from disranker.testing.smoke import build_smoke_inputs

pytestmark = pytest.mark.integration


def test_smoke_inputs_are_built_once_and_load_as_models_and_tables(tmp_path, wordnet_dir):
    paths = build_smoke_inputs(tmp_path / "smoke", wordnet_dir=str(wordnet_dir))
    assert set(paths) == {"corpus", "tiny_teacher", "tiny_scorer", "tiny_student", "tiny_labels"}
    load_teacher_lm(paths["tiny_teacher"])
    load_teacher_scorer(paths["tiny_scorer"])
    load_student(paths["tiny_student"])
    pool = io.read_table(io.join(paths["corpus"], "pool.parquet"))
    labels = io.read_table(paths["tiny_labels"])
    assert labels.num_rows == pool.num_rows == 800
    assert labels["doc_id"].to_pylist() == pool["doc_id"].to_pylist()
    assert np.isfinite(labels["teacher_score"].to_numpy()).all() and np.std(labels["teacher_score"].to_numpy()) > 0

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke").rglob("*") if p.is_file()}
    assert build_smoke_inputs(tmp_path / "smoke", wordnet_dir=str(wordnet_dir)) == paths
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke").rglob("*") if p.is_file()} == mtimes
