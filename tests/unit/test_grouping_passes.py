"""The grouping step's two passes as plain functions (``write_groups`` runs them as Ray tasks)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from disranker.data import io
from disranker.data.schemas import stable_keys
from disranker.training import grouping
from disranker.training.groups import Groups


def _judgments(n_queries: int, docs: range) -> pa.Table:
    rows = [
        {
            "query_id": f"q{q}",
            "query": f"query {q}",
            "doc_id": f"d{d}",
            "title": "",
            "summary": f"doc {d}",
            "label": d % 3,
        }
        for q in range(n_queries)
        for d in reversed(docs)
    ]
    return pa.Table.from_pylist(rows).cast(
        pa.schema(
            [*[(c, pa.string()) for c in ("query_id", "query", "doc_id", "title", "summary")], ("label", pa.int32())]
        )
    )


def test_each_input_file_is_staged_once_with_a_row_group_per_bucket(tmp_path):
    second = _judgments(3, range(3, 6))  # its row 2, q0's d3, gets a grade outside 0-4: rejected as input row 38
    second = second.set_column(
        5, "label", pa.array([9 if i == 2 else v for i, v in enumerate(second["label"].to_pylist())], pa.int32())
    )
    files = []
    for index, table in enumerate([_judgments(12, range(3)), second]):
        files.append(io.write_table(table, tmp_path / "in" / f"part-{index}.parquet"))
    staging = str(tmp_path / "staging")
    present = [grouping._split_file(str(tmp_path / "in"), file, i, 36 * i, 4, staging) for i, file in enumerate(files)]

    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["00000.parquet", "00001.parquet"]
    for index, buckets in enumerate(present):
        staged = pq.ParquetFile(tmp_path / "staging" / f"{index:05d}.parquet")
        assert staged.num_row_groups == len(buckets)
        for row_group, bucket in enumerate(buckets):
            ids = staged.read_row_group(row_group)["query_id"].to_pylist()
            assert set((stable_keys(ids) % 4).tolist()) == {bucket}

    sources = grouping._bucket_sources(present, 4)
    written = [
        grouping._group_bucket(staging, b, sources[b], str(tmp_path / "out"), "judgments", "label") for b in range(4)
    ]
    assert sum(q for q, _ in written) == 12 and sum(d for _, d in written) == 12 * 3 + 9 - 1
    grouped = Groups(str(tmp_path / "out"), "label", queries=12, rows_in=45, rows=44)
    grouping.publish_rejected(grouped, str(tmp_path / "rejected.parquet"))
    rejected = io.read_table(str(tmp_path / "rejected.parquet"))
    assert rejected["row"].to_pylist() == [38] and "q0" in rejected["record"][0].as_py()
    table = io.read_table(str(tmp_path / "out"))
    assert sorted(table["query_id"].to_pylist()) == sorted(f"q{q}" for q in range(12))  # each query once, whole
    q0 = table.filter(pa.compute.equal(table["query_id"], "q0")).to_pylist()[0]
    assert q0["n_docs"] == 5 and q0["label"] == [0.0, 1.0, 2.0, 1.0, 2.0]  # both files' valid rows, by doc_id
