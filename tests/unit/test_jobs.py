"""The ``jobs/`` entrypoints: ``--config FILE`` plus dotted overrides, as ``ray job submit`` runs them."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jobs.evaluate
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jobs._args import parse

from disranker.config import ConfigError, load_config
from disranker.evaluation.evaluate import EvaluateConfig
from disranker.pipeline import PipelineConfig
from disranker.pipeline import runner as pipeline_runner

CONFIGS = Path(jobs.evaluate.__file__).parent / "configs"

# q1 ranks d1(2) d3(0) d2(1): 2 concordant, 1 discordant.
JUDGED = [("q1", "d1", 2), ("q1", "d2", 1), ("q1", "d3", 0)]
SCORED = [("q1", "d1", 0.9), ("q1", "d2", 0.5), ("q1", "d3", 0.7)]


def write_tables(tmp_path) -> tuple[str, str]:
    judgments = pa.table(
        {
            "query_id": [q for q, _, _ in JUDGED],
            "query": ["a query"] * 3,
            "doc_id": [d for _, d, _ in JUDGED],
            "title": [""] * 3,
            "summary": [f"text of {d}" for _, d, _ in JUDGED],
            "label": [label for _, _, label in JUDGED],
        }
    )
    scores = pa.table(
        {
            "query_id": [q for q, _, _ in SCORED],
            "doc_id": [d for _, d, _ in SCORED],
            "score": [s for _, _, s in SCORED],
            "model": ["bm25"] * 3,
        }
    )
    pq.write_table(judgments, tmp_path / "j.parquet")
    pq.write_table(scores, tmp_path / "s.parquet")
    return str(tmp_path / "j.parquet"), str(tmp_path / "s.parquet")


def test_parse_reads_config_and_overrides():
    assert parse(["--config", "jobs/configs/evaluate.yaml", "a.b=1", "c=x"], "doc") == (
        "jobs/configs/evaluate.yaml", ["a.b=1", "c=x"]
    )  # fmt: skip


def test_parse_short_flag_and_no_overrides():
    assert parse(["-c", "f.yaml"], "doc") == ("f.yaml", [])


def test_parse_without_config():
    assert parse(["size=tiny"], "doc") == (None, ["size=tiny"])


def test_evaluate_job_runs_config_plus_overrides_and_prints_metrics(tmp_path, capsys):
    judgments, scores = write_tables(tmp_path)
    config = tmp_path / "evaluate.yaml"
    config.write_text(f"judgments: {judgments}\nscores: /nowhere.parquet\nmrr_min_label: 4\n")
    out = tmp_path / "eval"

    jobs.evaluate.main(["--config", str(config), f"scores={scores}", f"output_dir={out}", "mrr_min_label=2"])

    printed = capsys.readouterr().out
    body, _, last = printed.rstrip("\n").rpartition("\n")
    metrics = json.loads(body)
    assert (metrics["model"], metrics["n_queries"], metrics["n_preference_pairs"], metrics["n_rejected"]) == (
        "bm25",
        1,
        3,
        0,
    )
    assert (metrics["pnr"], metrics["pairwise_accuracy"], metrics["mrr@10"]) == (2.0, pytest.approx(2 / 3), 1.0)
    assert last == f"0 rows rejected; outputs in {out}"
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_evaluate_job_without_output_dir_writes_nothing(tmp_path, capsys):
    judgments, scores = write_tables(tmp_path)
    jobs.evaluate.main([f"judgments={judgments}", f"scores={scores}"])
    assert capsys.readouterr().out.endswith("0 rows rejected; outputs in (not written)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.parquet", "s.parquet"]


def test_evaluate_job_unknown_override_raises_naming_it(tmp_path):
    judgments, scores = write_tables(tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'nope' in EvaluateConfig"):
        jobs.evaluate.main([f"judgments={judgments}", f"scores={scores}", "nope=1"])


@pytest.mark.parametrize("name", ["evaluate.yaml", "evaluate_smoke.yaml"])
def test_shipped_evaluate_configs_load(name):
    assert load_config(EvaluateConfig, CONFIGS / name).mrr_min_label == 4


@pytest.mark.parametrize("name", ["demo.yaml", "pipeline_smoke.yaml"])
def test_shipped_pipeline_configs_load_with_every_stage_config(name, tmp_path):
    config = load_config(PipelineConfig, CONFIGS / name, [f"output_dir={tmp_path}"])
    dirs = {split: str(tmp_path / "samples" / split) for split in ("train", "pool", "dev", "test")}
    stages = pipeline_runner._stage_configs(config, str(tmp_path / "corpus"), dirs, dirs["pool"])
    # Each stage's folder is named like its key (issue 17).
    assert {name: stage.output_dir for name, stage in stages.items()} == {name: str(tmp_path / name) for name in stages}
    assert stages["teacher_sft"].model.spec == str(tmp_path / "teacher_cpt")
    assert stages["label"].teacher.spec == str(tmp_path / "teacher_sft")
    assert stages["label"].pool == dirs["pool"]
    assert stages["distill"].data.labels == str(tmp_path / "label")
    assert stages["distill_labels_only"].mode == "labels_only"
    # One human-label budget: the teacher SFT and the labels-only student train on exactly the same judgments.
    assert stages["teacher_sft"].data.train == stages["distill_labels_only"].data.judgments == dirs["train"]
    assert stages["teacher_sft"].data.max_examples is None and stages["distill_labels_only"].data.max_queries is None
    assert [m.name for m in stages["compare"].models][-1] == "student_distilled"


@pytest.mark.parametrize(("old", "new"), [("label_pool", "label"), ("distill_student", "distill"),
                                          ("evaluate_models", "compare")])  # fmt: skip
def test_the_old_job_modules_say_they_are_deprecated_and_run_the_new_ones(old, new, monkeypatch, capsys):
    shim, renamed = importlib.import_module(f"jobs.{old}"), importlib.import_module(f"jobs.{new}")
    calls = []
    monkeypatch.setattr(renamed, "main", calls.append)
    shim.main(["--config", "c.yaml", "a=1"])
    assert calls == [["--config", "c.yaml", "a=1"]]
    note = f"jobs.{old} is deprecated and goes in the next release: use python -m jobs.{new}\n"
    assert capsys.readouterr().err == note
