"""The labeling stage on a local 2-CPU Ray with a tiny teacher: exact counts, reruns, crashes, rejected rows."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.faults import FaultInjection
from disranker.labeling import LabelConfig, run
from disranker.models.text import pair_texts
from disranker.testing.tiny import build_tiny_scorer

pytestmark = pytest.mark.integration

ROWS = 90
ROWS_PER_SHARD = 25  # 4 shards, the last one short
WORDS = "the cat sat on the mat while a dog barked at the bird in the tree near the river".split()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_tiny_scorer(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """90 rows of varied length, three of them malformed: an empty query, a null doc_id, a repeated key."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "query_id": f"q{i // 6}",
            "query": " ".join(rng.choice(WORDS, size=3 + i % 5)),
            "doc_id": f"d{i}",
            "title": " ".join(rng.choice(WORDS, size=2)),
            "summary": " ".join(rng.choice(WORDS, size=4 + (7 * i) % 23)),
        }
        for i in range(ROWS)
    ]
    rows[7]["query"] = "   "
    rows[40]["doc_id"] = None
    rows[66]["query_id"], rows[66]["doc_id"] = rows[3]["query_id"], rows[3]["doc_id"]
    path = tmp_path_factory.mktemp("pool") / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=20)  # shards cross row groups
    return str(path)


def _overrides(pool, teacher, output_dir, workers=2) -> list[str]:
    return [
        f"pool={pool}",
        f"teacher.spec={teacher}",
        f"output_dir={output_dir}",
        f"rows_per_shard={ROWS_PER_SHARD}",
        "scoring.rows_per_call=16",
        "teacher.batch_size=4",
        "scoring.precision=fp32",  # the scores are compared to fp32 ones; bf16 is decided in unit tests
        f"scaling.num_workers={workers}",
        "scaling.cpus_per_worker=0.5",
    ]


def _config(pool, teacher, output_dir, workers=2) -> LabelConfig:
    return load_config(LabelConfig, overrides=_overrides(pool, teacher, output_dir, workers))


def _shard_mtimes(output_dir) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(output_dir.glob("*/*.parquet"))}


def _check_exactly_once(output_dir) -> tuple[pa.Table, pa.Table]:
    labels = io.read_table(output_dir / "labels")
    rejected = io.read_table(output_dir / "rejected")
    assert labels.num_rows + rejected.num_rows == ROWS
    keys = list(zip(labels["query_id"].to_pylist(), labels["doc_id"].to_pylist(), strict=True))
    assert len(set(keys)) == len(keys)
    rows_out = sorted(rejected["row"].to_pylist() + [int(d[1:]) for d in labels["doc_id"].to_pylist()])
    assert rows_out == list(range(ROWS))  # doc_id d<i> is row i: every row once, none twice
    return labels, rejected


@pytest.fixture(scope="module")
def first_run(ray_start_2_cpus, pool, teacher, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("labels")
    run(_config(pool, teacher, output_dir))
    return output_dir


def test_counts_and_rejected_reasons(first_run):
    labels, rejected = _check_exactly_once(first_run)
    assert labels.num_rows == ROWS - 3
    reasons = dict(zip(rejected["row"].to_pylist(), rejected["reason"].to_pylist(), strict=True))
    assert reasons[7] == "query: '   ' is empty or whitespace-only"
    assert reasons[40] == "doc_id: missing (null)"
    assert reasons[66].startswith("duplicate (query_id, doc_id) ('q0', 'd3'), first seen at row 3")
    assert labels.schema.field("teacher_score").type == pa.float32()
    assert set(labels["teacher"].to_pylist()) == {str(teacher_dir_of(first_run))}
    metrics = io.read_json(first_run / "disranker.json")["metrics"]
    assert (metrics["rows_in"], metrics["labeled"], metrics["rejected"]) == (ROWS, ROWS - 3, 3)
    assert metrics["shards_written"] == 4 and metrics["pairs_per_s"] > 0


def teacher_dir_of(output_dir) -> str:
    return io.read_json(output_dir / "disranker.json")["config"]["teacher"]["spec"]


def test_scores_equal_direct_transformers_scores(first_run, teacher):
    from disranker.models.loading import load_teacher_scorer, score_pairs_teacher

    labels = io.read_table(first_run / "labels")
    model, tokenizer = load_teacher_scorer(teacher)
    direct = score_pairs_teacher(model, tokenizer, *pair_texts(labels))
    np.testing.assert_allclose(labels["teacher_score"].to_numpy(), direct, rtol=1e-5, atol=1e-5)


def test_rerun_writes_nothing_new(first_run, pool, teacher):
    before = _shard_mtimes(first_run)
    run(_config(pool, teacher, first_run))  # complete: skipped at once
    (first_run / "disranker.json").unlink()
    run(_config(pool, teacher, first_run))  # lineage gone: every shard is found complete and skipped
    assert _shard_mtimes(first_run) == before
    assert io.read_json(first_run / "disranker.json")["metrics"]["shards_written"] == 0


def test_restart_after_driver_crash_completes_the_rest(first_run, pool, teacher, tmp_path):
    """A driver killed halfway leaves some shards whole, one shard with only its rejected file, and temp files."""
    labels_before = io.read_table(first_run / "labels")
    crashed = tmp_path / "labels"
    for table in ("labels", "rejected"):
        (crashed / table).mkdir(parents=True)
        for path in sorted((first_run / table).glob("*.parquet"))[:2]:
            (crashed / table / path.name).write_bytes(path.read_bytes())
    third = sorted((first_run / "rejected").glob("*.parquet"))[2]
    (crashed / "rejected" / third.name).write_bytes(third.read_bytes())  # died between the shard's two writes
    (crashed / "labels" / ".tmp-0123.parquet").write_bytes(b"half a file")
    (crashed / "plan.json").write_bytes((first_run / "plan.json").read_bytes())

    run(_config(pool, teacher, crashed, workers=1))
    labels, _ = _check_exactly_once(crashed)
    assert io.read_json(crashed / "disranker.json")["metrics"]["shards_written"] == 2
    # (query_id, doc_id) is the key; scores may differ in the last bits when batches are made up differently.
    key = [("query_id", "ascending"), ("doc_id", "ascending")]
    after, before = labels.sort_by(key), labels_before.sort_by(key)
    assert after.drop_columns(["teacher_score"]).equals(before.drop_columns(["teacher_score"]))
    np.testing.assert_allclose(after["teacher_score"].to_numpy(), before["teacher_score"].to_numpy(), rtol=1e-5)


def test_killed_scoring_actor_still_labels_every_row_once(ray_start_2_cpus, pool, teacher, tmp_path):
    marker = tmp_path / "actor-crashed"
    run(_config(pool, teacher, tmp_path / "labels"), FaultInjection(crash_scorer_once=str(marker)))
    assert marker.exists(), "the fault was never injected"
    labels, rejected = _check_exactly_once(tmp_path / "labels")
    assert (labels.num_rows, rejected.num_rows) == (ROWS - 3, 3)
    assert not any(name.startswith(".tmp") for name in os.listdir(tmp_path / "labels" / "labels"))


def _copy_run(source, target) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).write_bytes(path.read_bytes())


def test_a_pool_rewritten_in_place_is_refused_and_relabel_scores_the_new_texts(first_run, pool, teacher, tmp_path):
    """Before: same file name and row count passed the plan check, and the old texts and scores stayed."""
    out = tmp_path / "labels"
    _copy_run(first_run, out)
    rewritten = pq.read_table(pool)
    summaries = [None if s is None else f"{s} rewritten" for s in rewritten["summary"].to_pylist()]
    rewritten = rewritten.set_column(rewritten.schema.get_field_index("summary"), "summary", pa.array(summaries))
    new_pool = tmp_path / "pool" / "pool.parquet"  # the same shard names as the first run's pool
    new_pool.parent.mkdir()
    pq.write_table(rewritten, new_pool, row_group_size=20)
    (out / "plan.json").write_text((first_run / "plan.json").read_text().replace(pool, str(new_pool)))
    with pytest.raises(ConfigError, match="the content of pool file .* changed"):
        run(_config(new_pool, teacher, out))
    run(load_config(LabelConfig, overrides=[*_overrides(new_pool, teacher, out), "relabel=true"]))
    labels, _ = _check_exactly_once(out)
    assert all(s.endswith(" rewritten") for s in labels["summary"].to_pylist())


def test_rows_the_teacher_failed_on_are_scored_again_on_the_next_run(first_run, pool, teacher, tmp_path):
    """A transient scorer exception: before, its rows stayed rejected for good because the shard counted as done."""
    out = tmp_path / "labels"
    _copy_run(first_run, out)
    name = sorted((out / "labels").glob("*.parquet"))[1].name
    labels, rejected = pq.read_table(out / "labels" / name), pq.read_table(out / "rejected" / name)
    failed = labels.slice(0, 2)  # as a scorer exception on the first two rows would have left them
    failed_rows = [int(d[1:]) for d in failed["doc_id"].to_pylist()]
    extra = pa.table(
        {
            "table": ["pool"] * 2,
            "row": failed_rows,
            "reason": ["teacher failed: RuntimeError: transient"] * 2,
            "record": ["{}"] * 2,
        },
        schema=rejected.schema,
    )
    pq.write_table(pa.concat_tables([rejected, extra]), out / "rejected" / name)
    pq.write_table(labels.slice(2), out / "labels" / name)
    record = io.read_json(out / "disranker.json")  # as a run that kept 2 scorer failures records itself
    record["metrics"]["scorer_rejected"], record["id"] = 2, record["id"] + "-partial"
    io.write_json(record, out / "disranker.json")

    run(_config(pool, teacher, out, workers=1))
    labels, rejected = _check_exactly_once(out)
    assert (labels.num_rows, rejected.num_rows) == (ROWS - 3, 3)
    metrics = io.read_json(out / "disranker.json")["metrics"]
    assert (metrics["shards_written"], metrics["scorer_rejected"]) == (1, 0)


def test_a_rejection_rate_above_the_limit_fails_loudly_after_writing_every_shard(ray_start_2_cpus, pool, teacher,
                                                                                 tmp_path):  # fmt: skip
    out = tmp_path / "labels"
    config = load_config(LabelConfig, overrides=[*_overrides(pool, teacher, out), "max_rejected_fraction=0.02"])
    with pytest.raises(RuntimeError, match=r"3 of 90 pool rows were rejected \(3\.3% > max_rejected_fraction=0\.02\)"):
        run(config)
    _check_exactly_once(out)  # every shard is written; only the record of a finished run is not
    assert not (out / "disranker.json").exists()
