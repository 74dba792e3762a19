"""Seeded query samples of a corpus table, written as artifacts with lineage so a rerun reuses them.

A sample keeps every row of the chosen queries (a ranking is evaluated per query, and the teacher's training groups
are per query), and keeps the input's row order, so the same seed and input always give the same file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker import lineage
from disranker.data import io

STAGE = "sample"


def sample_queries(table: pa.Table, n_queries: int | None, seed: int) -> pa.Table:
    """All rows of ``n_queries`` distinct queries drawn with ``seed``; the whole table when None or ≥ the count."""
    query_ids = pc.unique(table["query_id"]).to_pylist()
    if n_queries is None or n_queries >= len(query_ids):
        return table
    chosen = np.random.default_rng(seed).choice(len(query_ids), size=n_queries, replace=False)
    keep = pa.array([query_ids[i] for i in sorted(chosen)], type=table.schema.field("query_id").type)
    return table.filter(pc.is_in(table["query_id"], value_set=keep))


def write_sample(source: str, output_dir: str, n_queries: int | None, seed: int) -> str:
    """Write the sample of ``source`` into ``output_dir`` (``part-0.parquet`` + ``disranker.json``); skip when done.

    The record's parent is the lineage id of the folder above ``source`` (the corpus), so every stage that reads
    the sample traces back to the corpus it came from.
    """
    parent = _corpus_id(source)
    settings = {"source": source, "queries": n_queries, "seed": seed}
    expected = lineage.lineage_id(STAGE, settings, [parent] if parent else [])
    if lineage.is_complete(output_dir, expected):
        return output_dir
    table = sample_queries(io.read_table(source), n_queries, seed)
    io.write_table(table, io.join(output_dir, "part-0.parquet"))
    metrics = {"queries": len(pc.unique(table["query_id"])), "rows": table.num_rows}
    lineage.write_lineage(output_dir, STAGE, settings, parents=[parent] if parent else [], metrics=metrics)
    return output_dir


def write_union(sample_dirs: list[str], output_dir: str, columns: list[str]) -> str:
    """One folder holding ``columns`` of every sample in ``sample_dirs`` (``part-<i>.parquet`` each, so a table of
    another contract, such as judgments, joins a pool without its label); skipped when done."""
    parents = [lineage.read_lineage(folder)["id"] for folder in sample_dirs]
    settings = {"sources": sample_dirs, "columns": columns}
    expected = lineage.lineage_id(STAGE, settings, parents)
    if lineage.is_complete(output_dir, expected):
        return output_dir
    queries = rows = 0
    for i, folder in enumerate(sample_dirs):
        table = io.read_table(folder, columns=columns)
        io.write_table(table, io.join(output_dir, f"part-{i}.parquet"))
        queries, rows = queries + query_count(folder), rows + table.num_rows
    lineage.write_lineage(output_dir, STAGE, settings, parents=parents, metrics={"queries": queries, "rows": rows})
    return output_dir


def query_count(sample_dir: str) -> int:
    return int(lineage.read_lineage(sample_dir)["metrics"]["queries"])


def _corpus_id(source: str) -> str | None:
    """The lineage id of the corpus holding ``source`` (``<corpus>/pool.parquet`` or ``<corpus>/judgments/x``)."""
    folder = source.rsplit("/", 1)[0]
    for candidate in (folder, folder.rsplit("/", 1)[0]):
        record = lineage.read_lineage(candidate)
        if record is not None:
            return record["id"]
    return None
