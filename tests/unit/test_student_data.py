"""The distillation loader: query groups (every row once per epoch, one query per group, a fixed order per seed) and
the training table (a labeling output folder is read through its labels/ shards only)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from disranker.data import io, schemas
from disranker.data.validate import rejected_table
from disranker.student.data import QueryGroups, read_training_table


def table(sizes: list[int]) -> pa.Table:
    query_ids = [f"q{q}" for q, n in enumerate(sizes) for _ in range(n)]
    n = len(query_ids)
    return pa.table(
        {
            "query_id": query_ids,
            "query": ["a query"] * n,
            "title": ["t"] * n,
            "summary": ["s"] * n,
            "teacher_score": np.arange(n, dtype=np.float32),
        }
    )


def test_each_row_once_per_epoch_and_groups_hold_one_query():
    data = QueryGroups(table([5, 3, 8, 1]), "teacher_score", group_size=4, groups_per_batch=2, seed=3)
    groups = data.epoch_groups(0)
    rows = groups[groups >= 0]
    assert sorted(rows.tolist()) == list(range(17))
    assert groups.shape == (2 + 1 + 2 + 1, 4)  # ceil(5/4) + ceil(3/4) + ceil(8/4) + ceil(1/4)
    codes = data.query_codes
    for group in groups:
        assert len(set(codes[group[group >= 0]].tolist())) == 1


def test_order_is_a_function_of_seed_and_epoch():
    data = QueryGroups(table([6, 6, 6]), "teacher_score", group_size=4, groups_per_batch=1, seed=0)
    np.testing.assert_array_equal(data.epoch_groups(1), data.epoch_groups(1))
    assert not np.array_equal(data.epoch_groups(0), data.epoch_groups(1))


def test_steps_per_epoch_drops_the_remainder_and_rejects_too_little_data():
    data = QueryGroups(table([4] * 7), "teacher_score", group_size=4, groups_per_batch=2, seed=0)
    assert data.steps_per_epoch(world_size=2) == 1  # 7 groups, 4 per step
    with pytest.raises(ValueError, match="cannot fill one step"):
        data.steps_per_epoch(world_size=4)


def labels_rows(query_ids: list[str]) -> pa.Table:
    n = len(query_ids)
    return pa.table(
        {
            "query_id": query_ids,
            "query": ["q"] * n,
            "doc_id": [f"d{i}" for i in range(n)],
            "title": ["t"] * n,
            "summary": ["s"] * n,
            "teacher_score": pa.array([float(i) for i in range(n)], pa.float32()),
            "teacher": ["sft:abc"] * n,
        },
        schema=schemas.LABELS,
    )


def test_a_labeling_output_folder_is_read_without_its_rejected_shards(tmp_path):
    io.write_table(labels_rows(["a", "a", "b"]), tmp_path / "labels" / "part-0.parquet")
    bad = pa.table({"query_id": ["c"], "doc_id": ["x"]})
    io.write_table(
        rejected_table(bad, "labels", {0: "missing field 'query'"}), tmp_path / "rejected" / "part-0.parquet"
    )
    table = read_training_table(str(tmp_path), "labels")
    assert table.num_rows == 3 and set(table["query_id"].to_pylist()) == {"a", "b"}
    assert read_training_table(str(tmp_path), "labels", max_queries=1)["query_id"].to_pylist() == ["a", "a"]


def test_distillation_refuses_the_folder_of_a_labeling_run_that_did_not_finish(tmp_path):
    from disranker import lineage
    from disranker.student.data import check_labeling_finished

    io.write_table(labels_rows(["a", "a", "b"]), tmp_path / "labels" / "part-0.parquet")
    io.write_json({"pool": {}}, tmp_path / "plan.json")  # labeling started here and stopped before its record
    for uri in (str(tmp_path), str(tmp_path / "labels"), str(tmp_path / "labels" / "part-0.parquet")):
        with pytest.raises(ValueError, match=r"the labeling run writing .* has not finished"):
            check_labeling_finished(uri)
    lineage.write_lineage(str(tmp_path), "labeling", {}, metrics={"rows_in": 4, "labeled": 3, "rejected": 1})
    check_labeling_finished(str(tmp_path))  # finished: accepted
    io.write_table(labels_rows(["a"]), tmp_path / "plain" / "labels.parquet")
    check_labeling_finished(str(tmp_path / "plain" / "labels.parquet"))  # a table no labeling run wrote
