"""The group table (``training.groups``) as the Ray Datasets a trainer is given, each worker streaming its share.

``GroupShards``, a Ray Train ``DataConfig``, hands worker ``r`` the rows with ``key % world_size == r`` up to its key
limit, read in file order with ``preserve_order``: a worker's stream is the same in every attempt, so the workers can
cut, shuffle and batch it deterministically from seed and epoch (``training.streams``) and a resumed epoch can skip
exactly what it trained on.
"""

from __future__ import annotations

import pyarrow as pa

from disranker.data import io
from disranker.training.groups import Groups

# CPUs of one read-and-filter task feeding the workers. Ray Data schedules nothing (not even a 0-CPU task) while the
# Train workers hold every CPU, so a run must leave this much free (checked in ``runner.StageRun.fit``).
INGEST_CPUS = 0.25


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
