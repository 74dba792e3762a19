"""Training tables as Ray Datasets of query groups, each worker streaming its own share (``get_dataset_shard``).

A ranking loss compares documents of one query, so the unit of training data is a query, not a row. ``write_groups``
turns a judgments or labels table into one row per query, its documents as list columns, validated query by query
against the table's contract (all of a query's rows meet in one group, so duplicates are found too), and writes it
once per run as Parquet through Ray Data's groupby: no process ever holds the whole input. Each group row carries
``key``, a stable 63-bit hash of its query id. ``GroupShards``, a Ray Train ``DataConfig``, hands worker ``r`` the rows
with ``key % world_size == r`` (and, with ``max_queries``, only the queries of smallest key), read in file order with
``preserve_order``: a worker's stream is the same in every attempt, so the workers can cut, shuffle and batch it
deterministically from seed and epoch (``student.data``) and a resumed epoch can skip exactly what it trained on.
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
# two integers per query instead of every title (the driver's memory no longer grows with the table).
LAYOUT = 2
# CPUs of one read-and-filter task feeding the workers. Ray Data schedules nothing (not even a 0-CPU task) while the
# Train workers hold every CPU, so a run must leave this much free (checked in ``runner.StageRun.fit``).
INGEST_CPUS = 0.25


def group_schema(target_column: str) -> pa.Schema:
    return pa.schema(
        [
            ("query_id", pa.string()),
            ("key", pa.int64()),
            ("n_docs", pa.int32()),
            ("query", pa.string()),
            ("titles", pa.list_(pa.string())),
            ("summaries", pa.list_(pa.string())),
            (target_column, pa.list_(pa.float32())),
        ]
    )


def to_group_rows(rows: pa.Table, contract: str, target_column: str) -> pa.Table:
    """One query's input rows (a Ray Data group) as one group row, its valid documents ordered by doc_id; no row when
    none is valid. A table holding several queries (a null query id groups them) gives one row per query."""
    schema = group_schema(target_column)
    valid = validate_table(rows, contract).valid
    out = []
    for query_id in dict.fromkeys(valid["query_id"].to_pylist()):
        docs = valid.filter(pc.equal(valid["query_id"], query_id)).sort_by("doc_id")
        out.append(
            {
                "query_id": query_id,
                "key": int(stable_keys([query_id])[0]),
                "n_docs": docs.num_rows,
                "query": docs["query"][0].as_py(),
                "titles": docs["title"].to_pylist(),
                "summaries": docs["summary"].to_pylist(),
                target_column: docs[target_column].cast(pa.float32()).to_pylist(),
            }
        )
    return pa.Table.from_pylist(out, schema=schema)


@dataclass(frozen=True)
class Groups:
    """A written group table: where it is and what went into it."""

    uri: str
    target_column: str
    queries: int
    rows_in: int  # input rows, valid or not
    rows: int  # valid rows (documents) in the groups

    @property
    def inputs(self) -> dict[str, int]:
        """Row counts for the stage's record, as the teacher stages report theirs."""
        return {"in": self.rows_in, "valid": self.rows, "rejected": self.rows_in - self.rows}

    def key_limit(self, max_queries: int | None) -> int:
        """The largest key kept when only ``max_queries`` queries train (those of smallest key)."""
        if max_queries is None or max_queries >= self.queries:
            return int(np.iinfo(np.int64).max)
        keys = io.read_table(self.uri, columns=["key"])["key"].to_numpy()
        return int(np.partition(keys, max_queries - 1)[max_queries - 1])

    def share(self, world_size: int, group_size: int, key_limit: int) -> Share:
        """What the workers train on: the queries up to ``key_limit``, split by key over ``world_size`` workers."""
        table = io.read_table(self.uri, columns=["key", "n_docs"])
        keys, docs = table["key"].to_numpy(), table["n_docs"].to_numpy().astype(np.int64)
        kept = keys <= key_limit
        chunks = -(-docs // group_size)
        per_rank = [int(chunks[kept & (keys % world_size == rank)].sum()) for rank in range(world_size)]
        return Share(queries=int(kept.sum()), rows=int(docs[kept].sum()), groups=per_rank)


@dataclass(frozen=True)
class Share:
    queries: int
    rows: int
    groups: list[int]  # groups of at most group_size documents in each worker's share


def write_groups(uri: str, contract: str, target_column: str, out: str) -> Groups:
    """Group ``uri`` (a labels or judgments table, file or folder) into ``out``, or reuse ``out`` when a finished
    write of the same files (names, sizes, modification times) is there: a retried run skips the grouping, an input
    rewritten in place is grouped again."""
    done, source = io.join(out, DONE), _signature(uri)
    if io.exists(done):
        record = io.read_json(done)
        if record["source"] == source and record.get("layout") == LAYOUT:
            return Groups(**record["groups"])
    dataset = _files_dataset(uri)
    rows_in = io.parquet_rows(uri)  # from the files' metadata: queries with no valid row are counted too
    grouped = dataset.groupby("query_id").map_groups(
        to_group_rows, fn_kwargs={"contract": contract, "target_column": target_column}, batch_format="pyarrow"
    )
    out_fs, out_path = io.resolve(out)
    if out_fs.get_file_info(out_path).type != pa.fs.FileType.NotFound:
        out_fs.delete_dir_contents(out_path)
    grouped.write_parquet(out_path, filesystem=out_fs)
    totals = io.read_table(out, columns=["n_docs"])
    groups = Groups(
        uri=out,
        target_column=target_column,
        queries=totals.num_rows,
        rows_in=rows_in,
        rows=int(pc.sum(totals["n_docs"]).as_py() or 0),
    )
    if groups.queries == 0:
        raise ValueError(f"{uri}: none of its {rows_in} rows keeps the {contract} contract, nothing to train on")
    io.write_json({"source": source, "layout": LAYOUT, "groups": groups.__dict__}, done)
    return groups


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


def group_shards(key_limit: int):
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
                        _rank_rows, fn_args=(world_size, rank, key_limit), batch_format="pyarrow", num_cpus=INGEST_CPUS
                    )
                    share.context.execution_options = options
                    output[rank][name] = share.iterator()
            return output

    return GroupShards(datasets_to_split=[])


def _rank_rows(batch: pa.Table, world_size: int, rank: int, key_limit: int) -> pa.Table:
    keys = batch["key"].to_numpy()
    return batch.filter(pa.array((keys % world_size == rank) & (keys <= key_limit)))
