"""The shard plan that makes labeling exactly-once and resumable.

A shard is a row range of one pool file, named after both (``pool.rows-000000000-000002000``), so the same pool and
``rows_per_shard`` always give the same names. Each shard is written as two Parquet files, each atomically (temporary
name, then rename): ``rejected/<name>.parquet`` first, then ``labels/<name>.parquet``. A shard whose labels file
exists is complete and a rerun skips it, unless the teacher failed on some of its rows (``SCORER_REASONS``): then the
rerun deletes its labels file first and scores it again. A crash between the two writes leaves a rejected file that
the rerun overwrites. After a run every pool row is in exactly one of the two tables.

Rows travel through Ray Data as the pool columns plus ``_shard`` (its shard name), ``_row`` (its index in the whole
pool, files taken in name order), ``_reason`` (null, or why it is rejected) and ``_record`` (the original row as JSON
when rejected). A row rejected by validation is never scored; a row the teacher fails on gets a reason there.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from disranker.data import io, schemas
from disranker.data.validate import rejected_table, validate_table
from disranker.labeling.pool_keys import repeated_keys

LABELS_DIR, REJECTED_DIR = "labels", "rejected"
# Reasons the scorer gives (labeling.backends): a rerun retries these rows; validation rejections are final.
SCORER_REASONS = ("teacher failed: ", "teacher_score: ")
READ_BATCH_ROWS = 1024  # rows decoded at once when a shard part is read out of a larger row group


@dataclass(frozen=True)
class Shard:
    name: str  # derived from the file's path under the pool and the row range
    file: str  # the pool file (path or URI)
    start: int  # first row, within the file
    stop: int  # one past the last row, within the file
    offset: int  # index of row `start` in the whole pool
    duplicates: tuple[tuple[int, str], ...] = ()  # (row in the pool, reason) of repeated keys, found across the pool

    @property
    def num_rows(self) -> int:
        return self.stop - self.start

    def parts(self, max_rows: int) -> list[Shard]:
        """The shard as row ranges of at most ``max_rows`` rows and near-equal sizes, each read by its own task; all
        keep the shard's name.

        Ray Data hands a block to one actor whole, so a 2,000-row shard read as one block would keep one actor busy
        while the others wait; parts of one actor call each spread it over the actors, and equal sizes keep a small
        shard (300 rows: 150 + 150, not 256 + 44) from landing mostly on one actor."""
        count = -(-self.num_rows // max_rows)
        bounds = [self.start + self.num_rows * i // count for i in range(count + 1)]
        parts = []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            offset = self.offset + start - self.start
            duplicates = tuple(pair for pair in self.duplicates if offset <= pair[0] < offset + stop - start)
            parts.append(replace(self, start=start, stop=stop, offset=offset, duplicates=duplicates))
        return parts

    def to_json(self) -> str:
        """This shard as one text value: a Ray Data row cannot hold the mixed (int, str) pairs as Arrow lists."""
        return json.dumps(asdict(self))


def pool_files(pool: str) -> list[str]:
    """The pool's Parquet files in name order: the file itself, or every ``*.parquet`` below a folder."""
    fs, path = io.resolve(pool)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no pool table at {pool}")
    if info.type == pafs.FileType.File:
        return [str(pool)]
    names = sorted(
        f.path[len(path) :].lstrip("/")
        for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet") and "/." not in f.path[len(path) :]
    )
    if not names:
        raise FileNotFoundError(f"the pool folder {pool} holds no .parquet files")
    return [io.join(pool, name) for name in names]


def plan_shards(pool: str, rows_per_shard: int) -> list[Shard]:
    """Every shard of the pool, in pool order, with the rows whose (query_id, doc_id) an earlier row already has."""
    files = pool_files(pool)
    counts = [_num_rows(file) for file in files]  # also checks each file has the pool's columns
    duplicates = repeated_keys(files)
    repeated = sorted(duplicates)
    shards, offset = [], 0
    for file, count in zip(files, counts, strict=True):
        stem = _shard_stem(pool, file)
        for start in range(0, count, rows_per_shard):
            stop = min(start + rows_per_shard, count)
            inside = repeated[bisect_left(repeated, offset + start) : bisect_left(repeated, offset + stop)]
            dups = tuple((row, duplicates[row]) for row in inside)
            shards.append(Shard(f"{stem}.rows-{start:09d}-{stop:09d}", file, start, stop, offset + start, dups))
        offset += count
    return shards


def _shard_stem(pool: str, file: str) -> str:
    """The file's path under the pool as one name: "~" becomes "~t" and "/" becomes "~s", so no two files share a
    stem (``a/b`` and ``a__b`` differ) and nothing in it means anything in a URI (``%2F`` would be decoded)."""
    if file == str(pool):
        return file.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet")
    relative = file[len(str(pool)) :].strip("/").removesuffix(".parquet")
    return relative.replace("~", "~t").replace("/", "~s")


def _num_rows(file: str) -> int:
    fs, path = io.resolve(file)
    metadata = pq.read_metadata(path, filesystem=fs)
    missing = [name for name in schemas.POOL.names if name not in metadata.schema.names]
    if missing:
        raise ValueError(
            f"pool file {file} lacks column(s) {', '.join(missing)}; a pool has {', '.join(schemas.POOL.names)}"
        )
    return metadata.num_rows


def read_shard(shard_json: str) -> pa.Table:
    """The rows of one shard (``Shard.to_json``) in the flow layout (module docstring), validated as pool rows."""
    item = json.loads(shard_json)
    shard = Shard(**{**item, "duplicates": tuple(tuple(pair) for pair in item["duplicates"])})
    rows = read_row_range(shard.file, shard.start, shard.stop)
    checked = validate_table(rows, "pool")
    reasons = {int(r["row"]): r["reason"] for r in checked.rejected.select(["row", "reason"]).to_pylist()}
    reasons.update({row - shard.offset: reason for row, reason in shard.duplicates})  # pool-wide check wins
    rejected = rejected_table(rows, "pool", reasons)
    reason_column = [None] * rows.num_rows
    record_column = [None] * rows.num_rows
    for row, reason, record in zip(
        rejected["row"].to_pylist(), rejected["reason"].to_pylist(), rejected["record"].to_pylist(), strict=True
    ):
        reason_column[row], record_column[row] = reason, record
    flow = {name: pc.cast(rows[name], pa.string()) for name in schemas.POOL.names}
    flow |= {
        "_shard": pa.array([shard.name] * rows.num_rows, pa.string()),
        "_row": pa.array(np.arange(shard.offset, shard.offset + rows.num_rows), pa.int64()),
        "_reason": pa.array(reason_column, pa.string()),
        "_record": pa.array(record_column, pa.string()),
    }
    return pa.table(flow)


def read_row_range(file: str, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a Parquet file, decoded ``READ_BATCH_ROWS`` at a time.

    Why not ``read_row_groups(...).slice(...)``: a part of a few hundred rows would decode its whole row group (64 Ki
    rows, more in files written elsewhere), so each read task's memory followed the pool's row groups, not the part."""
    fs, path = io.resolve(file)
    parquet = pq.ParquetFile(path, filesystem=fs)
    ends = np.cumsum([parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)], dtype=np.int64)
    first, last = int(np.searchsorted(ends, start, "right")), int(np.searchsorted(ends, stop - 1, "right"))
    position = int(ends[first - 1]) if first else 0  # the file row of the next batch's first row
    kept = []
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=list(range(first, last + 1))):
        low, high = max(start - position, 0), min(stop - position, batch.num_rows)
        if high > low:
            kept.append(batch.slice(low, high - low))
        position += batch.num_rows
        if position >= stop:
            break
    return pa.Table.from_batches(kept, schema=parquet.schema_arrow)


class ShardAssembler:
    """Collects scored rows as they stream back and hands out each shard once all of its rows have arrived."""

    def __init__(self, shards: list[Shard]) -> None:
        self.expected = {shard.name: shard.num_rows for shard in shards}
        self.parts: dict[str, list[pa.Table]] = defaultdict(list)
        self.received: dict[str, int] = defaultdict(int)

    def add(self, batch: pa.Table) -> list[tuple[str, pa.Table]]:
        """Add a scored batch; returns the shards it completed as (name, rows in pool order)."""
        done = []
        for name in pc.unique(batch["_shard"]).to_pylist():
            part = batch.filter(pc.equal(batch["_shard"], name))
            self.parts[name].append(part)
            self.received[name] += part.num_rows
            if self.received[name] > self.expected[name]:
                raise RuntimeError(f"shard {name} received {self.received[name]} rows for {self.expected[name]}")
            if self.received[name] == self.expected[name]:
                rows = pa.concat_tables(self.parts.pop(name), promote_options="permissive").sort_by("_row")
                done.append((name, rows))
        return done


def write_shard(output_dir: str, name: str, rows: pa.Table, teacher_id: str) -> tuple[int, int]:
    """Write one scored shard: rejected rows, then labels (the completion mark). Returns (labeled, rejected)."""
    bad = pc.is_valid(rows["_reason"])
    good = rows.filter(pc.invert(bad))
    rejected = rows.filter(bad)
    labels = pa.Table.from_arrays(
        [
            *(pc.cast(good[name], field.type) for name, field in zip(schemas.POOL.names, schemas.POOL, strict=True)),
            pc.cast(good["teacher_score"], pa.float32()),
            pa.array([teacher_id] * good.num_rows, pa.string()),
        ],
        schema=schemas.LABELS,
    )
    rejected_rows = pa.Table.from_pydict(
        {
            "table": ["pool"] * rejected.num_rows,
            "row": rejected["_row"],
            "reason": rejected["_reason"],
            "record": rejected["_record"],
        },
        schema=schemas.REJECTED,
    )
    io.write_table(rejected_rows, io.join(output_dir, REJECTED_DIR, f"{name}.parquet"))
    io.write_table(labels, io.join(output_dir, LABELS_DIR, f"{name}.parquet"))
    return labels.num_rows, rejected_rows.num_rows


def complete_shards(output_dir: str) -> set[str]:
    """Names of the shards whose labels file exists (written last, so the shard is whole)."""
    return {name for name, _ in _shard_files(output_dir, LABELS_DIR)}


def scorer_failures(output_dir: str, names: set[str]) -> list[tuple[str, int]]:
    """(shard, pool row) of each row in the named shards that the scorer, not validation, rejected."""
    failures = []
    for name, (fs, path) in _shard_files(output_dir, REJECTED_DIR):
        if name in names:
            table = pq.read_table(path, filesystem=fs, columns=["row", "reason"])
            failed = pc.or_(*(pc.starts_with(table["reason"], prefix) for prefix in SCORER_REASONS))
            failures += [(name, row) for row in table.filter(failed)["row"].to_pylist()]
    return sorted(failures)


def reopen(output_dir: str, names: set[str]) -> None:
    """Make the named shards incomplete again (their labels file goes first), so this run scores them anew."""
    for name, (fs, path) in list(_shard_files(output_dir, LABELS_DIR)):
        if name in names:
            fs.delete_file(path)


def teacher_values(output_dir: str, names: set[str]) -> set[str]:
    """The distinct ``teacher`` values of the named shards' labels (one run holds one teacher)."""
    values: set[str] = set()
    for name, (fs, path) in _shard_files(output_dir, LABELS_DIR):
        if name in names:
            values.update(pc.unique(pq.read_table(path, filesystem=fs, columns=["teacher"])["teacher"]).to_pylist())
    return values


def remove_partial_files(output_dir: str) -> None:
    """Delete the temporary files of writes a crashed driver left behind (readers would take them for shards)."""
    for table in (LABELS_DIR, REJECTED_DIR):
        fs, path = io.resolve(io.join(output_dir, table))
        for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.base_name.startswith(".tmp-"):
                fs.delete_file(info.path)


def count_rows(output_dir: str, names: set[str]) -> dict[str, int]:
    """Rows in the named shards' labels and rejected files, from the Parquet footers."""
    totals = {}
    for table in (LABELS_DIR, REJECTED_DIR):
        totals[table] = sum(
            pq.read_metadata(path, filesystem=fs).num_rows
            for name, (fs, path) in _shard_files(output_dir, table)
            if name in names
        )
    return {"labeled": totals[LABELS_DIR], "rejected": totals[REJECTED_DIR]}


def _shard_files(output_dir: str, table: str):
    fs, path = io.resolve(io.join(output_dir, table))
    for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        if (
            info.type == pafs.FileType.File
            and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
        ):
            yield info.base_name.removesuffix(".parquet"), (fs, info.path)
