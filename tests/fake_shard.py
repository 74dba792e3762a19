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
