"""Rows whose (query_id, doc_id) an earlier row of the pool already has, found across all pool files.

Each shard is validated on its own actor, so a key repeated in another shard can only be seen here, once per run,
by the driver. Two streamed passes keep the driver small at any pool size: the first validates the pool in batches
and keeps 16 bytes per valid row (a 63-bit hash of its key and its row number), and finds the rows whose hash
repeats; the second reads the key columns alone and compares the real keys of those rows only, so a hash collision
never rejects a row. Holding every key instead cost the driver 487 MiB at 1.26 M rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from disranker.data import io, schemas
from disranker.data.validate import validate_table

SCAN_ROWS = 100_000  # pool rows read (and validated) at a time


def repeated_keys(files: list[str]) -> dict[int, str]:
    """Pool row → reason, for each valid row whose key an earlier *valid* row of any file has (an invalid row is
    rejected for its own reason and must not shadow a later valid copy). Rows count across ``files`` in order."""
    hashes, rows = [], []
    for offset, batch in _batches(files):
        checked = validate_table(pa.Table.from_batches([batch]), "pool", check_duplicates=False)
        keys = pc.binary_join_element_wise(checked.valid["query_id"], checked.valid["doc_id"], "\x1f")
        hashes.append(schemas.stable_keys(keys.to_pylist()))
        rows.append(np.asarray(checked.rows, dtype=np.int64) + offset)
    if not hashes:
        return {}
    candidates = _rows_with_repeated_hash(np.concatenate(hashes), np.concatenate(rows))
    if len(candidates) == 0:
        return {}
    keys = _keys_of(files, candidates)
    first = keys.group_by(list(schemas.KEY), use_threads=False).aggregate([("_row", "min")])
    paired = keys.join(first, keys=list(schemas.KEY))
    repeats = paired.filter(pc.not_equal(paired["_row"], paired["_row_min"])).to_pylist()
    return {
        r["_row"]: f"duplicate (query_id, doc_id) {(r['query_id'], r['doc_id'])!r}, first seen at row {r['_row_min']}"
        for r in repeats
    }


def _rows_with_repeated_hash(hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The rows (sorted) whose hash another row shares."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(order), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    return np.sort(rows[order][repeated])


def _keys_of(files: list[str], rows: np.ndarray) -> pa.Table:
    """The key columns and row number of the given pool rows (the second pass: no validation, key columns only)."""
    parts = []
    for offset, batch in _batches(files, columns=list(schemas.KEY)):
        index = np.arange(offset, offset + batch.num_rows)
        kept = np.isin(index, rows, assume_unique=True)
        if kept.any():
            table = pa.Table.from_batches([batch]).filter(pa.array(kept))
            parts.append(table.append_column("_row", pa.array(index[kept], pa.int64())))
    return pa.concat_tables(parts)


def _batches(files: list[str], columns: list[str] | None = None):
    """(row number of the batch's first row in the whole pool, batch) for every ``SCAN_ROWS`` rows of each file."""
    offset = 0
    for file in files:
        fs, path = io.resolve(file)
        for batch in pq.ParquetFile(path, filesystem=fs).iter_batches(batch_size=SCAN_ROWS, columns=columns):
            yield offset, batch
            offset += batch.num_rows
