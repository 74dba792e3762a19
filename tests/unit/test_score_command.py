"""``disranker score`` on a small table (scored in-process) then ``disranker evaluate``: the comparison's numbers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from test_compare import comparison, judgments_table  # noqa: F401  (the module fixture, reused)
from typer.testing import CliRunner

from disranker.cli import app
from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.evaluation.score import ScoreConfig, run

runner = CliRunner()


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_score_then_evaluate_reproduces_the_comparison_stage(comparison, kind, tmp_path):  # noqa: F811
    root, config, out, _ = comparison
    scores = tmp_path / f"{kind}.parquet"
    result = runner.invoke(app, ["score", "--model", str(root / kind), "--input", str(root / "test.parquet"),
                                 "--out", str(scores), "--kind", kind, "max_length=256"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored 12 of 12 rows (0 rejected) with local" in result.output
    ours = io.read_table(scores)
    theirs = io.read_table(f"{out}/{kind}.parquet")
    np.testing.assert_allclose(ours["score"].to_numpy(), theirs["score"].to_numpy(), rtol=1e-5, atol=1e-6)

    evaluated = runner.invoke(app, ["evaluate", "--judgments", str(root / "test.parquet"), "--scores", str(scores)])
    metrics = json.loads(evaluated.output[: evaluated.output.rindex("}") + 1])
    expected = io.read_json(f"{out}/metrics.json")[kind]
    for key in ("ndcg@10", "pnr", "pairwise_accuracy", "n_preference_pairs"):  # MRR: the comparison counts label 4
        assert metrics[key] == pytest.approx(expected[key]), key


def test_rows_that_break_the_pool_contract_are_set_aside_and_named(comparison, tmp_path):  # noqa: F811
    root, _, _, _ = comparison
    table = judgments_table()
    rows = table.to_pylist()
    rows[2]["query"] = None
    bad = tmp_path / "bad.parquet"
    io.write_table(pa.Table.from_pylist(rows), bad)
    result = run(load_config(ScoreConfig, overrides=[f"model={root / 'student'}", f"input={bad}",
                                                      f"out={tmp_path / 's.parquet'}"]))  # fmt: skip
    assert (result.rows, result.scored, result.rejected) == (12, 11, 1)
    rejected = io.read_table(tmp_path / "s.rejected.parquet")
    assert rejected["reason"].to_pylist() == ["query: missing (null)"] and rejected["row"].to_pylist() == [2]


def test_out_must_be_a_parquet_file():
    with pytest.raises(ConfigError, match="must name a .parquet file"):
        load_config(ScoreConfig, overrides=["model=m", "input=i", "out=scores"])
