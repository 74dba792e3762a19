"""Training tables as Ray Datasets of query groups, each worker streaming its own share (``get_dataset_shard``).

A ranking loss compares documents of one query, so the unit of training data is a query, not a row. ``write_groups``
turns a judgments or labels table into one row per query, its documents as list columns, validated query by query
against the table's contract (all of a query's rows meet in one group, so duplicates are found too), and writes it
once per run as Parquet in two passes of Ray tasks: each input file is split into buckets by query key, then each
bucket becomes one group file. A task holds one input file or one bucket, so no process's memory grows with the table.
Each group row carries ``key``, a stable 63-bit hash of its query id. ``GroupShards``, a Ray Train ``DataConfig``, hands
worker ``r`` the rows with ``key % world_size == r`` (and, with a cap, only its queries of smallest key), read
in file order with ``preserve_order``: a worker's stream is the same in every attempt, so the workers can cut, shuffle
and batch it deterministically from seed and epoch (``student.data``) and a resumed epoch can skip exactly what it
trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker.data import io
from disranker.data.schemas import stable_keys
from disranker.data.validate import validate_table

DONE = "_groups.json"  # written last: a folder without it is an interrupted write and is written again
# The group rows' layout; a finished write of another layout is written again. 2: ``n_docs``, so that planning reads
# two integers per query instead of every title (the driver's memory no longer grows with the table). 3: one group
# file per bucket of ``ROWS_PER_BUCKET`` input rows, its queries in id order. 4: the rejected rows beside them.
LAYOUT = 4
# CPUs of one read-and-filter task feeding the workers. Ray Data schedules nothing (not even a 0-CPU task) while the
# Train workers hold every CPU, so a run must leave this much free (checked in ``runner.StageRun.fit``).
INGEST_CPUS = 0.25
# Input rows per bucket of the grouping step, so one group file per this many rows. Why not Ray Data's
# ``groupby().map_groups()``: its hash-shuffle tasks grew with the table (map tasks 3x the private memory at 1.26 M rows
# as at 126 k, benchmarks/scale.py), and its group files grew with it too, and so did every task that read one.
ROWS_PER_BUCKET = 20_000
NO_LIMIT = int(np.iinfo(np.int64).max)  # a worker's key limit when every query trains
REJECTED = "_rejected"  # beside the group files, hidden from their readers: the input rows that break the contract
INPUT_ROW = "_input_row"  # a staged row's number in the whole input (files in name order), for rejected rows' ``row``


def group_schema(target_column: str | None) -> pa.Schema:
    """The group rows' columns; ``target_column`` None: no target (the click log of CPT)."""
    target = [(target_column, pa.list_(pa.float32()))] if target_column else []
    return pa.schema(
        [
            ("query_id", pa.string()),
            ("key", pa.int64()),
            ("n_docs", pa.int32()),
            ("query", pa.string()),
            ("titles", pa.list_(pa.string())),
            ("summaries", pa.list_(pa.string())),
            *target,
        ]
    )


def to_group_rows(rows: pa.Table, contract: str, target_column: str | None) -> pa.Table:
    """The valid rows of ``rows`` as one group row per query (in query id order), each query's documents ordered by
    doc_id; a query with no valid row has no group."""
    return _group_valid_rows(validate_table(rows, contract).valid, target_column)


def _group_valid_rows(valid: pa.Table, target_column: str | None) -> pa.Table:
    valid = valid.sort_by([("query_id", "ascending"), ("doc_id", "ascending")])
    ids = valid["query_id"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, dtype=np.int64)
    offsets = pa.array(np.r_[starts, len(ids)].astype(np.int32))
    first = valid.take(pa.array(starts))

    def lists(column: str, value_type: pa.DataType) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, valid[column].combine_chunks().cast(value_type))

    columns = {
        "query_id": first["query_id"],
        "key": stable_keys(first["query_id"].to_pylist()),
        "n_docs": np.diff(offsets.to_numpy()).astype(np.int32),
        "query": first["query"],
        "titles": lists("title", pa.string()),
        "summaries": lists("summary", pa.string()),
    }
    if target_column:
        columns[target_column] = lists(target_column, pa.float32())
    return pa.table(columns, schema=group_schema(target_column))


@dataclass(frozen=True)
class Groups:
    """A written group table: where it is and what went into it."""

    uri: str
    target_column: str | None
    queries: int
    rows_in: int  # input rows, valid or not
    rows: int  # valid rows (documents) in the groups

    @property
    def inputs(self) -> dict[str, int]:
        """Row counts for the stage's record, as the teacher stages report theirs."""
        return {"in": self.rows_in, "valid": self.rows, "rejected": self.rows_in - self.rows}

    def key_limits(self, world_size: int, max_queries: int | None = None, max_rows: int | None = None) -> list[int]:
        """Per worker, the largest key it trains on. With a cap (smoke runs), each worker keeps its own queries of
        smallest key until it holds ⌈max_queries / world_size⌉ queries or ⌈max_rows / world_size⌉ documents, so the
        shares stay even however the keys fall; without one, every key."""
        if max_queries is None and max_rows is None:
            return [NO_LIMIT] * world_size
        table = io.read_table(self.uri, columns=["key", "n_docs"]).sort_by("key")
        keys, docs = table["key"].to_numpy(), table["n_docs"].to_numpy().astype(np.int64)
        cap = -(-(max_rows if max_rows is not None else max_queries) // world_size)
        limits = []
        for rank in range(world_size):
            mine = keys % world_size == rank
            held = np.cumsum(docs[mine]) if max_rows is not None else np.arange(1, int(mine.sum()) + 1)
            reached = np.flatnonzero(held >= cap)
            limits.append(int(keys[mine][reached[0]]) if len(reached) else NO_LIMIT)
        return limits

    def share(self, world_size: int, group_size: int, key_limits: list[int]) -> Share:
        """What the workers train on: the queries split by key over ``world_size`` workers, each up to its limit."""
        table = io.read_table(self.uri, columns=["key", "n_docs"])
        keys, docs = table["key"].to_numpy(), table["n_docs"].to_numpy().astype(np.int64)
        kept = kept_keys(keys, world_size, key_limits)
        chunks = -(-docs // group_size)
        per_rank = [int(chunks[kept & (keys % world_size == rank)].sum()) for rank in range(world_size)]
        return Share(queries=int(kept.sum()), rows=int(docs[kept].sum()), groups=per_rank)


def kept_keys(keys: np.ndarray, world_size: int, key_limits: list[int]) -> np.ndarray:
    """Which of ``keys`` train: those up to their worker's limit (``Groups.key_limits``)."""
    return keys <= np.asarray(key_limits, dtype=np.int64)[keys % world_size]


@dataclass(frozen=True)
class Share:
    queries: int
    rows: int
    groups: list[int]  # groups of at most group_size documents in each worker's share


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
    grouped = _group_valid_rows(checked.valid, target_column)
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


def shard_datasets(groups: Groups) -> dict:
    """The Ray Datasets a trainer is given (``datasets=``): the group table as ``train``, one block per file."""
    return {"train": _files_dataset(groups.uri)}


def _files_dataset(uri: str):
    """``uri``'s Parquet files as a Ray Dataset, one read task (and block) per file.

    Why not ``ray.data.read_parquet``: its file-listing and read operators do not start with less than a whole CPU
    free beside the workers (seen on Ray 2.60, docs/operations.md), and its read tasks' own memory grew with the number
    of files (1.17 GiB private at 63 label files vs 0.35 GiB at 7, benchmarks/scale.py); a task per file at
    ``INGEST_CPUS`` reads one file."""
    import ray.data

    items = [{"file": file} for file in io.parquet_files(uri)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    read = {"fn_kwargs": {"uri": uri}, "batch_size": 1, "batch_format": "pyarrow", "num_cpus": INGEST_CPUS}
    return dataset.map_batches(_read_file, **read)


def _read_file(batch: pa.Table, uri: str) -> pa.Table:
    import pyarrow.parquet as pq

    fs, _ = io.resolve(uri)
    return pq.read_table(batch["file"][0].as_py(), filesystem=fs)


def group_shards(key_limits: list[int]):
    """A ``DataConfig`` giving each worker its share of the ``train`` groups (module docstring)."""
    from ray.train import DataConfig

    class GroupShards(DataConfig):
        def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
            output = [{} for _ in range(world_size)]
            for name, dataset in datasets.items():
                options = self._resolve_execution_options(name)
                options.preserve_order = True  # the same stream in every attempt
                for rank in range(world_size):
                    share = dataset.map_batches(
                        _rank_rows,
                        fn_args=(world_size, rank, key_limits[rank]),
                        batch_format="pyarrow",
                        num_cpus=INGEST_CPUS,
                    )
                    share.context.execution_options = options
                    output[rank][name] = share.iterator()
            return output

    return GroupShards(datasets_to_split=[])


def _rank_rows(batch: pa.Table, world_size: int, rank: int, key_limit: int) -> pa.Table:
    keys = batch["key"].to_numpy()
    return batch.filter(pa.array((keys % world_size == rank) & (keys <= key_limit)))
