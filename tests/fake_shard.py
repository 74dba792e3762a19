"""A stand-in for what ``ray.train.get_dataset_shard`` returns, for loaders tested without Ray."""

from __future__ import annotations

import pyarrow as pa


class FakeShard:
    """A table served the one way the loaders read a shard: ``iter_batches`` of pyarrow tables."""

    def __init__(self, table: pa.Table):
        self.table = table

    def iter_batches(self, batch_size: int, batch_format: str):
        for start in range(0, self.table.num_rows, batch_size):
            yield self.table.slice(start, batch_size)


def groups_in_process(uri: str, contract: str, target_column: str | None, out: str):
    """``training.grouping.write_groups`` without Ray: its two passes as plain calls, one bucket."""
    from disranker.data import io
    from disranker.training import grouping
    from disranker.training.groups import Groups

    staging = f"{out}/_buckets"
    files = io.parquet_files(uri)
    offsets = [sum(io.parquet_rows(f) for f in files[:index]) for index in range(len(files))]
    present = [grouping._split_file(uri, file, i, offsets[i], 1, staging) for i, file in enumerate(files)]
    queries, rows = grouping._group_bucket(
        staging, 0, grouping._bucket_sources(present, 1)[0], out, contract, target_column
    )
    return Groups(out, target_column, queries=queries, rows_in=io.parquet_rows(uri), rows=rows)
