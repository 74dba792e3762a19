"""MLflow tracking from lineage records: one parent run, a child per stage, params, metric histories, tags."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from disranker import lineage
from disranker.config import ConfigError, load_config
from disranker.pipeline import PipelineConfig
from disranker.tracking import Tracker, TrackingSection, metric_points


def stage_folder(root, name, stage, metrics, parents=()):
    folder = root / name
    folder.mkdir(parents=True)
    config = {"training": {"lr": 5e-5, "epochs": 2}, "loss": {"name": "hybrid"}}
    return str(folder), lineage.write_lineage(str(folder), stage, config, parents=list(parents), metrics=metrics)


def test_a_pipeline_is_a_parent_run_with_one_child_per_stage(tmp_path):
    from mlflow.tracking import MlflowClient

    tracker = Tracker(TrackingSection(), str(tmp_path), {"samples": {"pool_queries": 300}})
    # Written before the stage was renamed `label`: tagged under the new name, like the records written since.
    labels, labels_record = stage_folder(tmp_path, "label", "labeling", {"pairs_per_s": 29.7})
    curve = [{"step": 5, "epoch": 0, "loss": 2.0}, {"step": 10, "epoch": 1, "loss": 1.2}]
    dev = [{"epoch": 0, "ndcg@10": 0.5, "pnr": 2.0}, {"epoch": 1, "ndcg@10": 0.6, "pnr": 2.5}]
    metrics = {"loss_curve": curve, "dev": dev, "best": {"ndcg@10": 0.6}}
    student, record = stage_folder(tmp_path, "distill", "distill", metrics, [labels_record["id"]])
    child = tracker.log_stage("distill", student)
    label_run = tracker.log_stage("label", labels)
    tracker.finish()

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([tracker.experiment_id])
    parent = next(r for r in runs if r.info.run_name == "pipeline")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["distill", "label"]
    assert client.get_run(label_run).data.tags["stage"] == "label"
    assert parent.data.params == {"samples.pool_queries": "300"} and parent.info.status == "FINISHED"
    run = client.get_run(child)
    assert run.data.params == {"training.lr": "5e-05", "training.epochs": "2", "loss.name": "hybrid"}
    assert run.data.tags["lineage_id"] == record["id"] and run.data.tags["parents"] == labels_record["id"]
    assert run.data.tags["output_dir"] == student and run.data.tags["reused"] == "false"
    assert [(m.step, m.value) for m in client.get_metric_history(child, "loss")] == [(5, 2.0), (10, 1.2)]
    assert [(m.step, m.value) for m in client.get_metric_history(child, "dev.ndcg_at_10")] == [(0, 0.5), (1, 0.6)]
    assert run.data.metrics["best.ndcg_at_10"] == 0.6


def test_a_stage_finished_before_the_job_started_is_tagged_reused(tmp_path, monkeypatch):
    folder, _ = stage_folder(tmp_path, "corpus", "demo_corpus", {"queries": 60})
    record = lineage.read_lineage(folder)
    record["created_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    (tmp_path / "corpus" / "disranker.json").write_text(json.dumps(record))
    tracker = Tracker(TrackingSection(), str(tmp_path), {})
    run = tracker.client.get_run(tracker.log_stage("corpus", folder))
    assert run.data.tags["reused"] == "true" and run.data.metrics == {"queries": 60.0}
    assert tracker.log_stage("nothing", str(tmp_path / "missing")) is None


def test_metric_points_skip_text_and_flags_and_flatten_nested_numbers():
    points = metric_points({"precision": {"used": "bf16", "spearman": 0.999}, "packed": True, "wall_s": 3.5})
    assert sorted(points) == [("precision.spearman", 0.999, 0), ("wall_s", 3.5, 0)]


def test_a_uri_output_folder_needs_a_tracking_server():
    with pytest.raises(ConfigError, match="'tracking.uri' is required"):
        load_config(PipelineConfig, None, ["output_dir=s3://bucket/demo"])  # at load, before any stage runs
    assert load_config(PipelineConfig, None, ["output_dir=s3://bucket/demo", "tracking=null"]).tracking is None
    assert TrackingSection(uri="http://mlflow:5000").resolve_uri("s3://bucket/demo") == "http://mlflow:5000"


def test_a_stage_run_alone_logs_itself_when_mlflow_tracking_uri_is_set(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from disranker.tracking import in_pipeline, log_stage_alone

    uri = f"sqlite:///{tmp_path}/alone.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    quiet, _ = stage_folder(tmp_path, "quiet", "distill", {"best": {"ndcg@10": 0.5}})
    assert log_stage_alone(quiet) is None  # not asked: nothing is logged
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "alone")
    folder, record = stage_folder(tmp_path, "distill", "distill", {"best": {"ndcg@10": 0.6}})
    assert log_stage_alone(folder) is not None
    inside, _ = stage_folder(tmp_path, "inside", "distill", {"best": {"ndcg@10": 0.7}})
    with in_pipeline():  # inside the main job its tracker logs the stage, not the stage itself
        assert log_stage_alone(inside) is None

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("alone").experiment_id])
    assert run.data.tags["stage"] == "distill" and run.data.tags["lineage_id"] == record["id"]
    assert run.data.tags["output_dir"] == folder and "mlflow.parentRunId" not in run.data.tags
    assert run.data.params["training.lr"] == "5e-05" and run.data.metrics["best.ndcg_at_10"] == 0.6
