"""Tables and JSON on plain paths and on URIs, shard folders, and atomic writes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from disranker.data import io


def table(n: int, start: int = 0) -> pa.Table:
    return pa.table({"query_id": [f"q{i}" for i in range(start, start + n)], "score": [float(i) for i in range(n)]})


def test_round_trip_through_a_file_uri(tmp_path):
    uri = f"file://{tmp_path}/nested/scores.parquet"
    assert io.write_table(table(3), uri) == uri
    assert io.exists(uri)
    assert io.read_table(uri).equals(table(3))
    assert io.read_table(tmp_path / "nested/scores.parquet").equals(table(3))


def test_row_groups_are_bounded_so_a_part_of_a_file_reads_as_little(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(io, "ROW_GROUP_ROWS", 4)
    io.write_table(table(10), tmp_path / "pool.parquet")
    groups = pq.ParquetFile(tmp_path / "pool.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [4, 4, 2]


def test_a_folder_of_shards_reads_in_name_order(tmp_path):
    io.write_table(table(2, start=2), tmp_path / "labels/shard-0001.parquet")
    io.write_table(table(2, start=0), tmp_path / "labels/shard-0000.parquet")
    (tmp_path / "labels/_SUCCESS").write_text("")  # non-parquet files in the folder are not shards
    io.write_table(table(5), tmp_path / "labels/.tmp-crashed.parquet")  # a write that never got renamed
    assert io.read_table(tmp_path / "labels")["query_id"].to_pylist() == ["q0", "q1", "q2", "q3"]


def test_writes_leave_no_temporary_files(tmp_path):
    io.write_table(table(1), tmp_path / "t.parquet")
    io.write_json({"a": 1}, tmp_path / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "t.parquet"]
    assert io.read_json(f"file://{tmp_path}/m.json") == {"a": 1}


def test_missing_table_and_empty_folder_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no table at"):
        io.read_table(tmp_path / "absent.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet files"):
        io.read_table(tmp_path / "empty")


def test_join_keeps_uri_schemes():
    assert io.join("s3://bucket/run/", "corpus", "pool.parquet") == "s3://bucket/run/corpus/pool.parquet"


def test_with_absolute_paths_resolves_the_named_fields_only(tmp_path, monkeypatch):
    from disranker.student.config import DistillConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "student").mkdir()
    config = DistillConfig(output_dir="out")
    config.data.labels, config.data.dev, config.student.model = "labels", "s3://bucket/dev.parquet", "student"
    config.data.judgments = ""
    paths = ("output_dir", "data.labels", "data.dev", "data.judgments")
    got = io.with_absolute_paths(config, paths, model_specs=("student.model",))
    assert (got.output_dir, got.data.labels) == (str(tmp_path / "out"), str(tmp_path / "labels"))
    assert (got.data.dev, got.data.judgments) == ("s3://bucket/dev.parquet", "")  # URIs and empty paths as they were
    assert got.student.model == str(tmp_path / "student")
    assert config.output_dir == "out" and got.loss == config.loss  # a copy; fields not named are untouched
