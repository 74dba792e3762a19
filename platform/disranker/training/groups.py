"""The group table: one row per query, its documents as list columns, and how the workers share it.

A ranking loss compares documents of one query, so the unit of training data is a query, not a row. Each group row
carries ``key``, a stable 63-bit hash of its query id; worker ``r`` of ``world_size`` trains on the rows with
``key % world_size == r`` (and, with a cap, only its own queries of smallest key). ``training.grouping`` writes the
table once per run, ``training.ingest`` streams each worker its share, ``training.streams`` turns that share into
the epoch's groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from disranker.data import io
from disranker.data.schemas import stable_keys
from disranker.data.validate import validate_table

NO_LIMIT = int(np.iinfo(np.int64).max)  # a worker's key limit when every query trains


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
    return group_valid_rows(validate_table(rows, contract).valid, target_column)


def group_valid_rows(valid: pa.Table, target_column: str | None) -> pa.Table:
    """``to_group_rows`` of rows already validated."""
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
