"""A worker's share of a group table (``training.groups``) as a stream that is the same in every attempt.

Both training stages that read query groups (teacher SFT, distillation) draw their groups from ``query_rows`` and pass
them through ``shuffled``; each seeds what it draws from (seed, epoch, query key), so a resumed epoch replays the same
order and can skip exactly what it already trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

# Why a buffer of our own and not Ray Data's local shuffle: a resume must replay the order exactly, and ours is a
# function of the seed and the stream alone.
SHUFFLE_BUFFER = 1024
ROWS_PER_READ = 256  # query rows per batch read from the worker's stream
COLUMNS = ("query_id", "key", "query", "titles", "summaries")

Item = TypeVar("Item")


def query_rows(shard, target_column: str | None) -> Iterator[tuple]:
    """``(query_id, key, query, titles, summaries[, targets])`` per query row of ``shard`` (a Ray ``DataIterator``, or
    anything with ``iter_batches``), in stream order; no targets when ``target_column`` is None."""
    names = (*COLUMNS, target_column) if target_column else COLUMNS
    for table in shard.iter_batches(batch_size=ROWS_PER_READ, batch_format="pyarrow"):
        yield from zip(*(table[name].to_pylist() for name in names), strict=True)


def shuffled(items: Iterable[Item], rng: np.random.Generator, buffer_size: int = SHUFFLE_BUFFER) -> Iterator[Item]:
    """``items`` through a shuffle buffer of ``buffer_size``: each new item takes a random slot's place once the
    buffer is full, and what is left comes out in a random order at the end."""
    buffer: list[Item] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = int(rng.integers(len(buffer)))
        yield buffer[slot]
        buffer[slot] = item
    yield from (buffer[i] for i in rng.permutation(len(buffer)))
