"""The main job end to end on the tiny corpus and tiny models: killed in the middle of labeling, rerun, finished.

One test, because every step needs the one before: a pipeline process is SIGKILLed (with its Ray) once the first
labels shard is on disk; the rerun must reuse the corpus and both teachers untouched, skip the shards written before
the kill, finish every stage, print the table, and leave a lineage chain from the served student to the corpus.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.compute as pc

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.labeling.shards import complete_shards
from disranker.pipeline import PipelineConfig, run

REPO = Path(__file__).resolve().parents[2]
MODELS = ["bm25", "random", "teacher", "student_labels_only", "student_distilled"]


def overrides(out: Path, wordnet_dir: str, smoke: dict[str, str]) -> list[str]:
    student = f'["student.model={smoke["tiny_student"]}"]'  # the smoke files' tiny models, built by the fixture
    return [f"output_dir={out}", f"corpus.wordnet_dir={wordnet_dir}",
            f'stages.teacher_cpt.overrides=["model.spec={smoke["tiny_teacher"]}"]',
            f"stages.distill.overrides={student}", f"stages.distill_labels_only.overrides={student}",
            # Small shards so labeling spans several of them and the kill lands between the first and the last.
            'stages.label.overrides=["rows_per_shard=50"]']  # fmt: skip


STAGE_LINE = re.compile(r"\d\d:\d\d:\d\d  \w+ (…|done in \d+\.\d s: .+)")


def kill_tree(process: subprocess.Popen) -> None:
    family = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=60)


def start_and_kill_during_labeling(out: Path, wordnet_dir: str, smoke: dict[str, str]) -> None:
    command = [sys.executable, "-m", "jobs.pipeline", "--config", "jobs/configs/pipeline_smoke.yaml"]
    log_path = out.parent / "first_run.log"
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}  # see the ray_start_2_cpus fixture
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, *overrides(out, wordnet_dir, smoke)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 900
    try:
        while not complete_shards(str(out / "label")):  # a labels file, not one still being written (.tmp-*)
            assert process.poll() is None, f"the first run ended early: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no labels shard within 15 minutes"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            kill_tree(process)
    assert not lineage.is_complete(str(out / "label"), (lineage.read_lineage(str(out / "label")) or {}).get("id", ""))
    # The terminal got the log file's name and one line per stage start and end; Ray's and the libraries' output
    # (worker lines, load reports, warnings) went to that file.
    printed = log_path.read_text().splitlines()
    assert printed[0] == f"logs: {out / 'logs' / 'pipeline.log'}", printed[:5]
    assert all(STAGE_LINE.fullmatch(line) for line in printed[1:]), printed
    assert "teacher_sft done in" in printed[-2] and printed[-1].endswith("label …")
    assert "RayTrainWorker" in (out / "logs" / "pipeline.log").read_text()


def created(out: Path, stage: str) -> str:
    return lineage.read_lineage(str(out / stage))["created_at"]


def lineage_chain(folder: Path, root: Path) -> list[str]:
    """Stages from ``folder`` back to the corpus, following the first parent that is a stage folder below ``root``."""
    by_id = {r["id"]: (r, p.parent) for p in root.rglob("disranker.json") if (r := io.read_json(p)) and "id" in r}
    record, chain = io.read_json(folder / "disranker.json"), []
    while record is not None:
        chain.append(record["stage"])
        parents = [by_id[p][0] for p in record["parents"] if p in by_id and by_id[p][0]["stage"] != "sample"]
        record = parents[-1] if parents else None
    return chain


def mlflow_stages(out: Path) -> dict[str, str]:
    """The newest pipeline run's children in the job's MLflow store: stage name → the lineage id it was logged with."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("disranker").experiment_id
    parent = client.search_runs([experiment], "tags.`mlflow.runName` = 'pipeline'", order_by=["start_time DESC"])[0]
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED"
    return {run.info.run_name: run.data.tags["lineage_id"] for run in children}


def test_pipeline_killed_during_labeling_resumes_without_redoing_finished_stages(
    tmp_path, wordnet_dir, smoke_inputs, request
):
    out = tmp_path / "pipeline"
    start_and_kill_during_labeling(out, wordnet_dir, smoke_inputs)
    request.getfixturevalue("ray_start_2_cpus")  # the rerun's Ray, started only after the first one is dead
    finished = {stage: created(out, stage) for stage in ("corpus", "teacher_cpt", "teacher_sft")}
    shards_before_kill = len(complete_shards(str(out / "label")))

    smoke_file = REPO / "jobs/configs/pipeline_smoke.yaml"
    config = load_config(PipelineConfig, smoke_file, overrides(out, wordnet_dir, smoke_inputs))
    result = run(config)

    assert {stage: created(out, stage) for stage in finished} == finished
    labels_record = lineage.read_lineage(str(out / "label"))["metrics"]
    assert labels_record["shards_skipped"] >= shards_before_kill >= 1
    pool = io.read_table(out / "samples" / "pool")
    labels = io.read_table(out / "label" / "labels")
    assert labels_record["rows_in"] == pool.num_rows == labels.num_rows + labels_record["rejected"]
    keys = pc.binary_join_element_wise(labels["query_id"], labels["doc_id"], "\x1f")
    assert len(pc.unique(keys)) == labels.num_rows

    assert list(result.metrics) == MODELS
    test_queries = len(pc.unique(io.read_table(out / "samples" / "test")["query_id"]))
    assert all(m["n_queries"] == test_queries for m in result.metrics.values())
    summary = result.summary()
    for name in MODELS:
        assert name in summary
    assert f"model={out / 'distill'}" in summary and (out / "compare" / "report.png").stat().st_size > 10_000
    assert lineage_chain(out / "distill", out) == ["distill", "label", "teacher_sft", "teacher_cpt", "demo_corpus"]

    assert (out / "pipeline" / "summary.txt").read_text().strip() == summary
    assert mlflow_stages(out) == {name: lineage.read_lineage(folder)["id"] for name, folder in result.folders.items()}
    stages = ("corpus", "teacher_cpt", "teacher_sft", "label", "distill", "distill_labels_only", "compare")
    stamps = {stage: created(out, stage) for stage in stages}
    run(config)  # a third run finds every stage complete
    assert {stage: created(out, stage) for stage in stamps} == stamps
