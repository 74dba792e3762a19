"""The labeling shard plan and configs, without Ray: deterministic names, pool-wide duplicates, row ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disranker.config import ConfigError, load_config
from disranker.labeling import LabelConfig
from disranker.labeling import shards as shard_plan
from disranker.labeling.shards import ShardAssembler, plan_shards, read_shard

CONFIGS = Path(__file__).parents[2] / "jobs" / "configs"


def _pool(path: Path, ids: list[int], query: str = "a query") -> None:
    rows = [{"query_id": "q", "query": query, "doc_id": f"d{i}", "title": "", "summary": f"doc {i}"} for i in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)


def test_plan_names_files_and_row_ranges_and_finds_duplicates_across_files(tmp_path):
    _pool(tmp_path / "pool" / "a.parquet", list(range(5)))
    _pool(tmp_path / "pool" / "part" / "b.parquet", [5, 1, 6])  # d1 again, in another file
    shards = plan_shards(str(tmp_path / "pool"), rows_per_shard=2)
    assert [s.name for s in shards] == [
        "a.rows-000000000-000000002",
        "a.rows-000000002-000000004",
        "a.rows-000000004-000000005",
        "part~sb.rows-000000000-000000002",
        "part~sb.rows-000000002-000000003",
    ]
    assert [s.offset for s in shards] == [0, 2, 4, 5, 7]
    assert shards[3].duplicates == ((6, "duplicate (query_id, doc_id) ('q', 'd1'), first seen at row 1"),)
    assert plan_shards(str(tmp_path / "pool"), rows_per_shard=2) == shards  # deterministic


def test_colliding_key_hashes_never_reject_a_row(tmp_path, monkeypatch):
    """The scan keeps a hash per key and checks repeats on the real keys: with every hash equal, only true repeats."""
    from disranker.data import schemas

    _pool(tmp_path / "pool" / "a.parquet", [0, 1, 2, 1, 3])
    want = plan_shards(str(tmp_path / "pool"), rows_per_shard=5)[0].duplicates
    monkeypatch.setattr(schemas, "stable_keys", lambda texts: np.zeros(len(list(texts)), dtype=np.int64))
    assert plan_shards(str(tmp_path / "pool"), rows_per_shard=5)[0].duplicates == want
    assert want == ((3, "duplicate (query_id, doc_id) ('q', 'd1'), first seen at row 1"),)


def test_nested_and_flat_files_of_the_same_path_get_different_shard_names(tmp_path):
    _pool(tmp_path / "pool" / "a" / "b.parquet", [0])
    _pool(tmp_path / "pool" / "a__b.parquet", [1])
    _pool(tmp_path / "pool" / "a~sb.parquet", [2])
    names = [s.name for s in plan_shards(str(tmp_path / "pool"), rows_per_shard=5)]
    assert len(set(names)) == 3, names  # before: a/b and a__b were both "a__b"


def test_shards_of_a_nested_pool_are_found_again_under_a_uri_output_dir(tmp_path):
    """Before: "%2F" in a name was decoded to "/" by the URI filesystem, so finished shards were never found."""
    from disranker.labeling.shards import complete_shards, count_rows, write_shard

    _pool(tmp_path / "pool" / "part" / "b.parquet", [0, 1])
    (shard,) = plan_shards(str(tmp_path / "pool"), rows_per_shard=5)
    rows = read_shard(shard.to_json()).append_column("teacher_score", pa.array([0.5, 0.5], pa.float32()))
    out = f"file://{tmp_path / 'out'}"
    write_shard(out, shard.name, rows, "t")
    assert complete_shards(out) == {shard.name}
    assert count_rows(out, {shard.name}) == {"labeled": 2, "rejected": 0}


def test_an_invalid_row_does_not_shadow_a_later_valid_copy_of_its_key(tmp_path):
    rows = [
        {"query_id": "q", "query": " ", "doc_id": "d1", "title": "", "summary": "blank query"},  # invalid
        {"query_id": "q", "query": "a query", "doc_id": "d1", "title": "", "summary": "the valid copy"},
        {"query_id": "q", "query": "a query", "doc_id": "d1", "title": "", "summary": "a true repeat"},
    ]
    (tmp_path / "pool").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "pool" / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), tmp_path / "pool" / "b.parquet")
    shards = plan_shards(str(tmp_path / "pool"), rows_per_shard=5)
    reasons = pa.concat_tables([read_shard(s.to_json()) for s in shards])["_reason"].to_pylist()
    assert reasons[0] == "query: ' ' is empty or whitespace-only"
    assert reasons[1] is None  # before: rejected as a repeat of the invalid row 0
    assert reasons[2] == "duplicate (query_id, doc_id) ('q', 'd1'), first seen at row 1"


@settings(max_examples=60, deadline=None)
@given(bounds=st.tuples(st.integers(0, 23), st.integers(1, 24)).filter(lambda b: b[0] < b[1]))
def test_read_row_range_equals_a_slice_of_the_whole_file(tmp_path_factory, bounds):
    path = tmp_path_factory.getbasetemp() / "range" / "pool.parquet"
    if not path.exists():
        _pool(path, list(range(24)))  # row groups of 3
    start, stop = bounds
    original = shard_plan.READ_BATCH_ROWS
    shard_plan.READ_BATCH_ROWS = 2  # batches that straddle the range's ends and the row groups' ends
    try:
        rows = shard_plan.read_row_range(str(path), start, stop)
    finally:
        shard_plan.READ_BATCH_ROWS = original
    assert rows["doc_id"].to_pylist() == [f"d{i}" for i in range(start, stop)]


def test_read_shard_slices_across_row_groups_and_marks_rejected_rows(tmp_path):
    _pool(tmp_path / "pool.parquet", list(range(10)))
    shard = plan_shards(str(tmp_path / "pool.parquet"), rows_per_shard=4)[1]  # rows 4-7: two row groups
    rows = read_shard(shard.to_json())
    assert rows["doc_id"].to_pylist() == ["d4", "d5", "d6", "d7"]
    assert rows["_row"].to_pylist() == [4, 5, 6, 7]
    assert rows["_reason"].null_count == 4

    _pool(tmp_path / "blank.parquet", [0, 1], query=" ")
    blank = read_shard(plan_shards(str(tmp_path / "blank.parquet"), 10)[0].to_json())
    assert blank["_reason"].to_pylist() == ["query: ' ' is empty or whitespace-only"] * 2


def test_parts_of_a_shard_read_its_rows_exactly_once_under_its_name(tmp_path):
    _pool(tmp_path / "pool" / "a.parquet", list(range(4)))
    _pool(tmp_path / "pool" / "b.parquet", [4, 1, 5, 2, 6, 7, 3])  # d1, d2, d3 repeat rows of a.parquet
    shard = plan_shards(str(tmp_path / "pool"), rows_per_shard=7)[1]  # all of b.parquet: pool rows 4-10
    parts = shard.parts(3)  # 7 rows in at most 3: 2 + 2 + 3, not 3 + 3 + 1
    assert [(p.start, p.stop, p.offset) for p in parts] == [(0, 2, 4), (2, 4, 6), (4, 7, 8)]
    assert {p.name for p in parts} == {shard.name} and sum(p.num_rows for p in parts) == shard.num_rows
    assert [[row for row, _ in p.duplicates] for p in parts] == [[5], [7], [10]]  # pool rows 5, 7, 10 repeat keys
    read = pa.concat_tables([read_shard(p.to_json()) for p in parts])
    whole = read_shard(shard.to_json())
    assert read.to_pylist() == whole.to_pylist()  # same rows, row numbers and rejection reasons as one read
    assert read["_reason"].null_count == 4 and shard.parts(100) == [shard]


def test_assembler_hands_out_a_shard_once_all_its_rows_arrived(tmp_path):
    _pool(tmp_path / "pool.parquet", list(range(5)))
    shards = plan_shards(str(tmp_path / "pool.parquet"), rows_per_shard=3)
    rows = pa.concat_tables([read_shard(s.to_json()) for s in shards])
    assembler = ShardAssembler(shards)
    assert assembler.add(rows.slice(0, 2)) == []
    done = assembler.add(rows.slice(2, 3))
    assert [(name, table["_row"].to_pylist()) for name, table in done] == [
        (shards[0].name, [0, 1, 2]),
        (shards[1].name, [3, 4]),
    ]


@pytest.mark.parametrize("name", ["label.yaml", "label_smoke.yaml"])
def test_job_configs_load(name):
    config = load_config(LabelConfig, CONFIGS / name)
    assert config.scaling.num_workers * config.scaling.cpus_per_worker < 2  # leaves a CPU for Ray Data's reads here


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="scoring.backend"):
        load_config(LabelConfig, overrides=["scoring.backend=onnx"])


def test_scoring_precision_picks_the_weights_dtype_and_keeps_fp32_on_a_cpu_by_default():
    from disranker.labeling.backends import scoring_dtype

    # The driver resolves `auto` before the actors start (labeling.precision_check); an actor given `auto` on a CPU
    # takes fp32, the safe side.
    assert scoring_dtype("auto", "cpu") == "float32"
    assert scoring_dtype("bf16", "cpu") == "bfloat16" and scoring_dtype("fp32", "cuda") == "float32"
    config = load_config(LabelConfig, None, ["scoring.precision=bf16"])
    assert config.score_relevant()["precision"] == "bf16"  # shards written in another precision are not reused
