"""The comparison stage (``disranker compare``) on a hand-made judgments table with tiny random models."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import jobs.compare
import numpy as np
import pyarrow as pa
import pytest

from disranker import lineage
from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.data.schemas import JUDGMENTS
from disranker.data.trec import read_trec_run
from disranker.evaluation import compare, report_plots
from disranker.testing.tiny import build_tiny_student, build_tiny_teacher

# 3 queries × 4 docs, graded 4/2/1/0: each query has 6 pairs with different labels, so n_preference_pairs = 18 exactly.
N_QUERIES, DOCS, GRADES = 3, 4, (4, 2, 1, 0)
TITLES = ("dog", "cat", "tree", "river")
REQUIRED_KEYS = {"pnr", "ndcg@10", "mrr@10", "pairwise_accuracy", "n_queries", "n_preference_pairs", "n_rejected",
                 "kind", "scoring_s", "latency_ms_per_pair"}  # fmt: skip


def judgments_table() -> pa.Table:
    rows = [
        {
            "query_id": f"q{q}",
            "query": f"a small {TITLES[q]} of the house",
            "doc_id": f"q{q}d{d}",
            "title": TITLES[(q + d) % len(TITLES)],
            "summary": f"the {TITLES[(q + d) % len(TITLES)]} sat by the water {d}",
            "label": GRADES[d],
        }
        for q in range(N_QUERIES)
        for d in range(DOCS)
    ]
    return pa.Table.from_pylist(rows).cast(JUDGMENTS)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    io.write_table(judgments_table(), root / "test.parquet")
    teacher = build_tiny_teacher(root / "teacher")
    student = build_tiny_student(root / "student")
    # A distilled student's record: the stage reads its loss curve and its lineage id becomes a parent.
    curve = [{"step": 5, "epoch": 0, "loss": 2.0}, {"step": 10, "epoch": 0, "loss": 1.2}]
    record = lineage.write_lineage(student, "distill", {"x": 1}, metrics={"loss_curve": curve})
    config = load_config(
        compare.CompareConfig,
        None,
        [
            f"output_dir={root / 'out'}",
            f"judgments={root / 'test.parquet'}",
            "models=[{name: bm25, kind: bm25}, {name: random, kind: random}, "
            f"{{name: teacher, kind: teacher, path: {teacher}}}, {{name: student, kind: student, path: {student}}}]",
            "batch_size=5",
            "run_models_on=local",
        ],
    )
    out = compare.run(config)
    return root, config, out, record["id"]


def test_metrics_json_has_every_model_with_exact_counts(comparison):
    _, _, out, _ = comparison
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    assert list(metrics) == ["bm25", "random", "teacher", "student"]
    for name, values in metrics.items():
        assert REQUIRED_KEYS <= set(values), name
        assert (values["model"], values["n_queries"], values["n_preference_pairs"], values["n_rejected"]) == (
            name,
            3,
            18,
            0,
        )
        assert values["latency_ms_per_pair"] == pytest.approx(1000 * values["scoring_s"] / 12)
    assert [metrics[n]["kind"] for n in metrics] == ["bm25", "random", "teacher", "student"]
    assert metrics["student"]["reference_teacher"] == "teacher"
    assert -1.0 <= metrics["student"]["teacher_spearman"] <= 1.0
    assert "teacher_pearson" not in metrics["bm25"]


def test_score_tables_and_run_files_hold_one_line_per_pair(comparison):
    root, _, out, _ = comparison
    folder = Path(out)
    for name in ("bm25", "random", "teacher", "student"):
        scores = io.read_table(folder / f"{name}.parquet")
        assert scores.num_rows == 12 and set(scores["model"].to_pylist()) == {name}
        lines = (folder / f"{name}.run").read_text().splitlines()
        assert len(lines) == 12
        run = read_trec_run(folder / f"{name}.run")
        assert sorted(run["doc_id"].to_pylist()) == sorted(scores["doc_id"].to_pylist())


def test_report_png_is_a_png_of_the_figure_size(comparison):
    _, _, out, _ = comparison
    data = (Path(out) / "report.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR: the first chunk, right after the signature
    # 1 student column → the minimum width; rows: table (4 models + header), distribution, scatter, loss.
    expected_h = report_plots.ROW_HEIGHTS_IN["table"] * 5 + 3.4 + 3.8 + 3.2 + 0.6
    assert (width, height) == (round(report_plots.MIN_WIDTH_IN * 100), round(expected_h * 100))


def test_report_figure_has_the_papers_panels(comparison):
    _, _, out, _ = comparison
    folder = Path(out)
    metrics = json.loads((folder / "metrics.json").read_text())
    scores = {name: io.read_table(folder / f"{name}.parquet")["score"].to_numpy() for name in metrics}
    kinds = {name: values["kind"] for name, values in metrics.items()}
    curves = {"student": compare.read_loss_curve(str(comparison[0] / "student"))}

    figure = report_plots.build_report(metrics, scores, kinds, curves)

    titles = [ax.get_title() for ax in figure.axes]
    spearman = metrics["student"]["teacher_spearman"]
    assert titles[:3] == [
        "metrics on the test split",
        "score distribution: student vs teacher",
        f"student vs teacher: Pearson {metrics['student']['teacher_pearson']:.3f}, Spearman {spearman:.3f}",
    ]
    assert titles[3] == "training loss"
    assert len(figure.axes[0].tables) == 1
    assert figure.axes[0].tables[0].get_celld()[(1, 0)].get_text().get_text() == "bm25"
    loss_line = figure.axes[3].get_lines()[0]
    assert list(loss_line.get_ydata()) == [2.0, 1.2]


def test_lineage_names_the_student_and_a_rerun_skips(comparison):
    _, config, out, student_id = comparison
    record = lineage.read_lineage(out)
    assert record["stage"] == "compare" and student_id in record["parents"]
    before = (Path(out) / "metrics.json").stat().st_mtime_ns
    assert compare.run(config) == out
    assert (Path(out) / "metrics.json").stat().st_mtime_ns == before


def test_correlations_match_hand_computed_values_and_are_nan_for_constant_input():
    from disranker.evaluation import correlation

    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0])
    assert correlation.spearman(x, y) == pytest.approx(1.0)
    assert correlation.pearson(x, y) == pytest.approx(0.984374, abs=1e-6)
    # Ties share their average rank: [1, 2.5, 2.5, 4] against [1, 2, 3, 4].
    assert correlation.spearman(np.array([1.0, 2, 2, 3]), np.arange(4.0)) == pytest.approx(0.9486833)
    # One rule for every caller (the comparison and the int8 check used to disagree: 0.0 vs NaN).
    assert np.isnan(correlation.pearson(np.ones(4), x)) and np.isnan(correlation.spearman(x, np.ones(4)))


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ("[]", "'models' is empty"),
        ("[{name: a b, kind: bm25}]", "'models[0].name' 'a b'"),
        ("[{name: a, kind: bm25}, {name: a, kind: random}]", "'models[1].name' 'a' is used twice"),
        ("[{name: s, kind: student}]", "'models[0].path' is required for a student"),
        ("[{name: s, kind: llm}]", "'models[0].kind' must be one of"),
    ],
)
def test_bad_model_lists_are_rejected_naming_the_entry(models, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(compare.CompareConfig, None, ["judgments=j.parquet", f"models={models}"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scoring_cpus=0"], "'scoring_cpus' must be > 0"),
        (["device=cuda"], "'device' cuda on Ray needs 'scoring_gpus' > 0"),
    ],
)
def test_bad_scoring_resources_are_rejected_naming_the_field(overrides, message):
    models = "models=[{name: s, kind: student, path: s}]"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(compare.CompareConfig, None, ["judgments=j.parquet", models, *overrides])


@pytest.mark.parametrize("name", ["compare.yaml", "compare_smoke.yaml"])
def test_shipped_configs_load(name):
    config = load_config(compare.CompareConfig, Path(jobs.compare.__file__).parent / "configs" / name)
    assert [m.kind for m in config.models][:2] == ["bm25", "random"] and config.mrr_min_label == 4


def test_job_prints_the_summary_table(comparison, capsys):
    root, _, _, _ = comparison
    out = root / "job"
    jobs.compare.main([f"judgments={root / 'test.parquet'}", f"output_dir={out}", "models=[{name: bm25, kind: bm25}]"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["model", *compare.SUMMARY_COLUMNS]
    assert printed[2].split()[0] == "bm25" and printed[2].split()[-1] == "18"
    assert printed[-1] == f"outputs (metrics.json, report.png, <model>.run): {out}"


def test_cli_command_writes_the_comparison(comparison):
    from typer.testing import CliRunner

    from disranker.cli import app

    root, _, _, _ = comparison
    out = root / "cli"
    overrides = [f"judgments={root / 'test.parquet'}", f"output_dir={out}", "models=[{name: random, kind: random}]"]
    result = CliRunner().invoke(app, ["compare", *overrides])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].split()[0] == "random"
    assert json.loads((out / "metrics.json").read_text())["random"]["n_preference_pairs"] == 18
