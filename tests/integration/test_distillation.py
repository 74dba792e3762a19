"""The distillation stage on 2 Ray Train workers with a tiny student, on synthetic tables whose target is learnable.

The target of a (query, doc) pair is how often the doc says "red" (0–3): a doc-side signal a 2-layer BERT picks up in
a few dozen steps, so "the student ends closer to the teacher" is a real check rather than noise.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.evaluation.metrics import pnr
from disranker.faults import FaultInjection
from disranker.models.loading import load_student, score_pairs_student
from disranker.models.text import pair_texts
from disranker.student import train
from disranker.student.config import DistillConfig
from disranker.testing.tiny import build_tiny_student
from disranker.training import grouping

pytestmark = pytest.mark.integration
FILLER = "the a dog cat tree water house book road city".split()


def synthetic_table(n_queries: int, docs_per_query: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        for d in range(docs_per_query):
            reds = int(rng.integers(0, 4))
            words = [*rng.choice(FILLER, size=6), *["red"] * reds]
            rng.shuffle(words)
            rows.append(
                {
                    "query_id": f"q{q}",
                    "query": f"a {rng.choice(FILLER)}",
                    "doc_id": f"q{q}d{d}",
                    "title": str(rng.choice(FILLER)),
                    "summary": " ".join(words),
                    "reds": reds,
                }
            )
    table = pa.Table.from_pylist(rows)
    reds = table["reds"].to_numpy()
    labels = table.append_column("teacher_score", pa.array((2.0 * reds - 3.0).astype(np.float32)))
    labels = labels.append_column("teacher", pa.array(["synthetic"] * len(table))).drop_columns(["reds"])
    judgments = table.append_column("label", pa.array(reds.astype(np.int8))).drop_columns(["reds"])
    return labels, judgments


def teacher_pnr(student_dir: str, table: pa.Table, target: np.ndarray) -> float:
    """PNR of the student's order against the target's order (pairs with different targets)."""
    model, tokenizer = load_student(student_dir)
    scores = score_pairs_student(model, tokenizer, *pair_texts(table))
    ranks = np.unique(target, return_inverse=True)[1]  # integer labels that order pairs as the target does
    return pnr(table["query_id"].to_numpy(zero_copy_only=False), ranks, scores)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    labels, judgments = synthetic_table(48, 8, seed=0)
    _, dev = synthetic_table(12, 8, seed=1)
    io.write_table(labels, root / "labels" / "part-00000.parquet")
    io.write_table(judgments, root / "train.parquet")
    io.write_table(dev, root / "dev.parquet")
    student = build_tiny_student(root / "tiny_student")
    return root, labels, judgments, student


def distill_config(root, student, name: str, *overrides: str) -> DistillConfig:
    return load_config(
        DistillConfig,
        None,
        [
            f"output_dir={root / name}",
            f"data.labels={root / 'labels'}",
            f"data.judgments={root / 'train.parquet'}",
            f"data.dev={root / 'dev.parquet'}",
            f"student.model={student}",
            "training.lr=5e-3",
            "training.epochs=3",
            "training.groups_per_batch=2",
            "training.group_size=8",
            "training.log_every_steps=4",
            "training.warmup_ratio=0.0",
            "scaling.num_workers=2",
            "scaling.cpus_per_worker=0.5",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def distilled(ray_start_2_cpus, tables):
    """A hybrid-loss run that fails once after step 3 (test hook) and resumes from its step-2 checkpoint."""
    root, labels, _, student = tables
    config = distill_config(root, student, "hybrid", "run.checkpoint_every_steps=2")
    return train.run(config, FaultInjection(after_step=3, trace_dir=str(root / "trace")))


def test_hybrid_loss_goes_down_and_student_moves_towards_teacher(distilled, tables):
    _, labels, _, student = tables
    metrics = lineage.read_lineage(distilled)["metrics"]
    curve = [point["loss"] for point in metrics["loss_curve"]]
    shares = metrics["groups_per_worker"]  # 48 queries × 1 group, split over 2 workers by a hash of the query id
    assert sum(shares) == 48 and metrics["step"] == 3 * (min(shares) // 2)
    assert np.mean(curve[-3:]) < 0.5 * np.mean(curve[:2])
    target = labels["teacher_score"].to_numpy()
    before, after = teacher_pnr(student, labels, target), teacher_pnr(distilled, labels, target)
    assert after > before + 1.0, (before, after)
    assert len(metrics["dev"]) == 3 and metrics["best"]["metric"] == "ndcg@10"


def test_resumes_after_injected_failure_and_trains_every_group_once_per_epoch(distilled, tables):
    root = tables[0]
    metrics = lineage.read_lineage(distilled)["metrics"]
    assert metrics["resumed_from_steps"] == [2]
    total = metrics["step"]
    assert [p["step"] for p in metrics["loss_curve"]] == sorted({*range(4, total + 1, 4), total})  # and the last
    # What the final model trained on: the first attempt up to its step-2 checkpoint, then the resumed attempt.
    lines = [json.loads(line) for rank in (0, 1) for line in (root / "trace" / f"rank-{rank}.jsonl").open()]
    kept = [t for t in lines if t["resumed_from"] == 2 or (t["resumed_from"] is None and t["step"] <= 2)]
    per_epoch = metrics["steps_per_epoch"]
    assert sorted(t["step"] for t in kept) == sorted(list(range(1, total + 1)) * 2)  # each step on each rank
    for epoch in range(3):
        ids = [i for t in kept if (t["step"] - 1) // per_epoch == epoch for i in t["ids"]]
        assert len(ids) == len(set(ids)) == per_epoch * 2 * 2  # no group twice; steps × workers × groups per step
    assert any(t["resumed_from"] is None and t["step"] == 3 for t in lines)  # the step lost with the failed attempt


def test_crossencoder_round_trip(distilled, tables):
    from sentence_transformers import CrossEncoder

    _, labels, _, _ = tables
    rows = labels.slice(0, 16).to_pylist()
    model, tokenizer = load_student(distilled)
    ours = score_pairs_student(
        model, tokenizer, [r["query"] for r in rows], [r["title"] for r in rows], [r["summary"] for r in rows]
    )
    cross = CrossEncoder(distilled, device="cpu")
    theirs = cross.predict([(r["query"], f"{r['title']}. {r['summary']}") for r in rows])
    np.testing.assert_allclose(theirs, ours, atol=1e-5)  # raw logits: config.json names the identity activation


def test_labels_only_trains_on_judgments(ray_start_2_cpus, tables):
    root, _, judgments, student = tables
    # One worker: prepare_model leaves the model unwrapped (no DDP), a path the 2-worker tests do not take; at 1.75 of
    # the 2 CPUs, as the demo runs it, the data stream still gets its quarter CPU.
    config = distill_config(
        root, student, "labels_only", "mode=labels_only", "loss.name=point", "scaling.num_workers=1",
        "scaling.cpus_per_worker=1.75",
    )  # fmt: skip
    folder = train.run(config)
    metrics = lineage.read_lineage(folder)["metrics"]
    assert metrics["train_rows"] == judgments.num_rows and metrics["step"] == 72  # 48 groups / 2 per step × 3 epochs
    n = judgments.num_rows
    assert metrics["inputs"] == {"train": {"in": n, "valid": n, "rejected": 0}}
    target = judgments["label"].to_numpy()
    assert teacher_pnr(folder, judgments, target) > teacher_pnr(student, judgments, target) + 1.0


def test_grouping_keeps_queries_whole_across_files_and_buckets(ray_start_2_cpus, tables, tmp_path, monkeypatch):
    _, labels, _, _ = tables
    # each query's rows spread over three input files, a repeated row and a row with no query id among them
    spread = labels.take(np.argsort(np.arange(labels.num_rows) % 3, kind="stable"))
    broken = pa.concat_tables(
        [spread.slice(0, 1), spread.slice(0, 1).set_column(0, "query_id", pa.array([None], pa.string()))]
    )
    parts = [spread.slice(0, 128), spread.slice(128, 128), pa.concat_tables([spread.slice(256), broken])]
    for index, part in enumerate(parts):
        io.write_table(part, tmp_path / "labels" / f"part-{index:05d}.parquet")
    monkeypatch.setattr(grouping, "ROWS_PER_BUCKET", 100)  # 386 rows: 4 buckets, so 4 group files
    written = grouping.write_groups(str(tmp_path / "labels"), "labels", "teacher_score", str(tmp_path / "groups"))
    assert (written.queries, written.rows, written.rows_in) == (48, labels.num_rows, labels.num_rows + 2)
    table = io.read_table(written.uri)
    assert sorted(table["query_id"].to_pylist()) == sorted(set(labels["query_id"].to_pylist()))  # each once
    assert set(table["n_docs"].to_pylist()) == {8}
    assert len(io.parquet_files(written.uri)) == 4 and not (tmp_path / "groups" / "_buckets").exists()
    grouping.publish_rejected(written, str(tmp_path / "rejected.parquet"))  # the repeat and the null id, as numbered
    assert io.read_table(tmp_path / "rejected.parquet")["row"].to_pylist() == [labels.num_rows, labels.num_rows + 1]
    rows = table.filter(pa.compute.equal(table["query_id"], "q3")).to_pylist()[0]
    expected = labels.filter(pa.compute.equal(labels["query_id"], "q3")).sort_by("doc_id")
    assert rows["teacher_score"] == expected["teacher_score"].to_pylist()
    assert grouping.write_groups(str(tmp_path / "labels"), "labels", "teacher_score", written.uri) == written  # reused
