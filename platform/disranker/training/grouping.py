"""``write_groups``: a judgments, labels or clicks table as the group table (``training.groups``), written once per run.

Two passes of plain Ray tasks: each input file is split into buckets by query key (pass 1), then each bucket becomes
one group file, validated query by query against the table's contract (pass 2: all of a query's rows meet there, so
duplicates are found too), its rows that break the contract written beside the groups. A task holds one input file or
one bucket, so no process's memory grows with the table.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker.data import io
from disranker.data.schemas import stable_keys
from disranker.data.validate import validate_table
from disranker.training.groups import Groups, group_valid_rows

DONE = "_groups.json"  # written last: a folder without it is an interrupted write and is written again
# The group rows' layout; a finished write of another layout is written again. 2: ``n_docs``, so that planning reads
# two integers per query instead of every title (the driver's memory no longer grows with the table). 3: one group
# file per bucket of ``ROWS_PER_BUCKET`` input rows, its queries in id order. 4: the rejected rows beside them.
LAYOUT = 4
# Input rows per bucket of the grouping step, so one group file per this many rows. Why not Ray Data's
# ``groupby().map_groups()``: its hash-shuffle tasks grew with the table (map tasks 3x the private memory at 1.26 M rows
# as at 126 k, benchmarks/scale.py), and its group files grew with it too, and so did every task that read one.
ROWS_PER_BUCKET = 20_000
REJECTED = "_rejected"  # beside the group files, hidden from their readers: the input rows that break the contract
INPUT_ROW = "_input_row"  # a staged row's number in the whole input (files in name order), for rejected rows' ``row``


def write_groups(uri: str, contract: str, target_column: str | None, out: str) -> Groups:
    """Group ``uri`` (a labels or judgments table, file or folder) into ``out``, or reuse ``out`` when a finished
    write of the same files (names, sizes, modification times) is there: a retried run skips the grouping, an input
    rewritten in place is grouped again."""
    done, source = io.join(out, DONE), _signature(uri)
    if io.exists(done):
        record = io.read_json(done)
        if record["source"] == source and record.get("layout") == LAYOUT:
            return Groups(**record["groups"])
    import pyarrow.parquet as pq
    import ray

    files = io.parquet_files(uri)
    in_fs, _ = io.resolve(uri)
    # From the files' metadata: queries with no valid row are counted too, and each file's first row in the input.
    file_rows = [pq.read_metadata(file, filesystem=in_fs).num_rows for file in files]
    rows_in, offsets = sum(file_rows), np.cumsum([0, *file_rows])
    buckets = max(1, -(-rows_in // ROWS_PER_BUCKET))
    out_fs, out_path = io.resolve(out)
    if out_fs.get_file_info(out_path).type != pa.fs.FileType.NotFound:
        out_fs.delete_dir_contents(out_path)
    staging = io.join(out, "_buckets")  # hidden from readers of ``out`` (a leading ``_``), removed when done
    split, group = ray.remote(_split_file), ray.remote(_group_bucket)
    present = ray.get(
        [split.remote(uri, file, index, int(offsets[index]), buckets, staging) for index, file in enumerate(files)]
    )
    sources = _bucket_sources(present, buckets)
    written = ray.get(
        [group.remote(staging, bucket, sources[bucket], out, contract, target_column) for bucket in range(buckets)]
    )
    out_fs.delete_dir(io.resolve(staging)[1])
    groups = Groups(
        uri=out,
        target_column=target_column,
        queries=sum(queries for queries, _ in written),
        rows_in=rows_in,
        rows=sum(rows for _, rows in written),
    )
    if groups.queries == 0:
        raise ValueError(f"{uri}: none of its {rows_in} rows keeps the {contract} contract, nothing to train on")
    io.write_json({"source": source, "layout": LAYOUT, "groups": groups.__dict__}, done)
    return groups


def _split_file(uri: str, file: str, index: int, offset: int, buckets: int, staging: str) -> np.ndarray:
    """Pass 1: input file ``index``'s rows (its first is the input's row ``offset``) into ``staging/<index>.parquet``,
    each with its row number in the input, one row group per bucket of query key, in bucket order; returns the
    buckets present (row group ``i`` holds bucket ``present[i]``).

    One staging file per input file, not per (file, bucket): the pairs grow with the square of the table."""
    import pyarrow.parquet as pq

    fs, _ = io.resolve(uri)
    table = pq.read_table(file, filesystem=fs)
    if "query_id" not in table.column_names:
        raise ValueError(f"{file}: no query_id column, which groups the rows into queries")
    table = table.append_column(INPUT_ROW, pa.array(np.arange(offset, offset + table.num_rows), pa.int64()))
    ids = table["query_id"].cast(pa.string()).fill_null("").to_pylist()  # null ids are rejected in pass 2
    bucket_of = stable_keys(ids) % buckets
    # One stable sort, then a slice per bucket (a filter per bucket would scan the file once for each).
    order = np.argsort(bucket_of, kind="stable")
    present, starts = np.unique(bucket_of[order], return_index=True)
    ordered = table.take(pa.array(order))
    ends = [*starts[1:], len(order)]
    if len(order):
        io.write_row_groups(
            [ordered.slice(a, b - a) for a, b in zip(starts, ends, strict=True)], _staged(staging, index)
        )
    return present


def _bucket_sources(present: list[np.ndarray], buckets: int) -> list[list[tuple[int, int]]]:
    """For each bucket, the (staging file, row group) pairs that hold its rows."""
    sources: list[list[tuple[int, int]]] = [[] for _ in range(buckets)]
    for index, file_buckets in enumerate(present):
        for row_group, bucket in enumerate(file_buckets.tolist()):
            sources[bucket].append((index, row_group))
    return sources


def _staged(staging: str, index: int) -> str:
    return io.join(staging, f"{index:05d}.parquet")


def _group_bucket(
    staging: str, bucket: int, sources: list[tuple[int, int]], out: str, contract: str, target_column: str | None
) -> tuple[int, int]:
    """Pass 2: one bucket's row groups (whole queries) as group rows in ``out/part-<bucket>.parquet``, its rows that
    break the contract (with reasons) in ``out/_rejected/part-<bucket>.parquet``; returns the (queries, documents)
    written."""
    import pyarrow.parquet as pq

    if not sources:
        return 0, 0
    fs, _ = io.resolve(staging)
    parts = [
        pq.ParquetFile(io.resolve(_staged(staging, index))[1], filesystem=fs).read_row_group(row_group)
        for index, row_group in sources
    ]
    rows = pa.concat_tables(parts, promote_options="default")
    input_rows = rows[INPUT_ROW].to_numpy()
    checked = validate_table(rows.drop_columns([INPUT_ROW]), contract)
    if checked.rejected.num_rows:
        rejected = checked.rejected  # its ``row`` numbers this bucket's rows: the input's numbers are reported
        numbered = pa.array(input_rows[rejected["row"].to_numpy()])
        rejected = rejected.set_column(rejected.schema.get_field_index("row"), "row", numbered)
        io.write_table(rejected, io.join(out, REJECTED, f"part-{bucket:05d}.parquet"))
    grouped = group_valid_rows(checked.valid, target_column)
    if grouped.num_rows:
        io.write_table(grouped, io.join(out, f"part-{bucket:05d}.parquet"))
    return grouped.num_rows, int(pc.sum(grouped["n_docs"]).as_py() or 0)


def publish_rejected(groups: Groups, path: str) -> None:
    """The input rows the grouping rejected (reasons and original records) as one table at ``path``; none: no file
    (an earlier run's is removed). Reads the rejected rows only."""
    if groups.rows_in > groups.rows:
        io.write_table(io.read_table(io.join(groups.uri, REJECTED)).sort_by("row"), path)
    elif io.exists(path):
        fs, local = io.resolve(path)
        fs.delete_file(local)


def _signature(uri: str) -> list[list]:
    fs, _ = io.resolve(uri)
    files = io.parquet_files(uri)
    return [[info.path, info.size, info.mtime_ns] for info in fs.get_file_info(files)]
