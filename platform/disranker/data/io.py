"""Reading and writing tables and JSON on a local path or any URI pyarrow understands (s3://, gs://, hdfs://).

A table path is either one Parquet file or a folder of Parquet shards (the labeling stage writes shards). Writes go
to a temporary name first and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def resolve(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it; plain paths are local and made absolute."""
    text = str(uri)
    if "://" in text:
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())


def absolute(uri: str) -> str:
    """A relative local path made absolute; URIs, ``packaged:`` specs and empty strings unchanged. Ray workers run in
    another directory, so a relative path must become absolute before it travels to them."""
    if not uri or "://" in uri or uri.startswith("packaged:"):
        return uri
    return str(Path(uri).expanduser().resolve())


def absolute_model_spec(spec: str) -> str:
    """``absolute`` for a model spec that is a local folder; a hub id such as ``org/name`` is left as it is."""
    return absolute(spec) if spec and "://" not in spec and Path(spec).expanduser().exists() else spec


def with_absolute_paths(config: Any, paths: Iterable[str] = (), model_specs: Iterable[str] = ()) -> Any:
    """A copy of a config dataclass whose dotted fields ``paths`` are made ``absolute`` and ``model_specs`` resolved by
    ``absolute_model_spec``: a stage does this once, before its config travels to workers in other directories."""
    for dotted, make in [*((p, absolute) for p in paths), *((m, absolute_model_spec) for m in model_specs)]:
        config = _replace_dotted(config, dotted.split("."), make)
    return config


def _replace_dotted(config: Any, keys: list[str], make) -> Any:
    head, *rest = keys
    value = getattr(config, head)
    return dataclasses.replace(config, **{head: _replace_dotted(value, rest, make) if rest else make(value)})


def exists(uri: str | Path) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def join(uri: str | Path, *parts: str) -> str:
    """``uri/part/...`` without turning ``s3://bucket`` into a local path."""
    return "/".join([str(uri).rstrip("/"), *parts])


def read_table(uri: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, or every ``*.parquet`` shard under a folder (in name order), skipping hidden and temporary
    files (names starting with ``.`` or ``_``), which are half-written or bookkeeping."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        return pq.read_table(path, filesystem=fs, columns=columns)
    return pads.dataset(parquet_files(uri), filesystem=fs, format="parquet").to_table(columns=columns)


def parquet_files(uri: str | Path) -> list[str]:
    """The Parquet file ``uri``, or the shards under the folder ``uri`` in name order (paths on its filesystem),
    without hidden and temporary files (names starting with ``.`` or ``_``), which are half-written or bookkeeping."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no table at {uri}")
    if info.type == pafs.FileType.File:
        return [path]
    shards = sorted(
        f.path
        for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet") and not _hidden(f.path[len(path) :])
    )
    if not shards:
        raise FileNotFoundError(f"{uri} is a folder with no .parquet files")
    return shards


def parquet_rows(uri: str | Path) -> int:
    """The rows of the table at ``uri``, from its files' footers (no data read)."""
    fs, _ = resolve(uri)
    return sum(pq.read_metadata(path, filesystem=fs).num_rows for path in parquet_files(uri))


# Parquet is read a row group at a time at the least, so a reader of part of a file (a labeling shard: 1,000 rows)
# holds a whole row group: pyarrow's default of 1 Mi rows made the shard readers' memory grow with the pool (947 MiB
# at 1.26 M rows against 534 at 126 k, benchmarks/scale.py). 64 Ki rows bounds it at any pool size.
ROW_GROUP_ROWS = 65_536


def _hidden(relative: str) -> bool:
    """Temporary (``.tmp-*``) and bookkeeping (``_SUCCESS``-style) files are not shards, at any depth."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def write_table(table: pa.Table, uri: str | Path) -> str:
    """Write ``table`` as one Parquet file, atomically (temporary name, then rename), in row groups of at most
    ``ROW_GROUP_ROWS`` rows. Returns the path written."""
    fs, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp, filesystem=fs, row_group_size=ROW_GROUP_ROWS)
    fs.move(tmp, path)
    return str(uri)


def write_row_groups(parts: list[pa.Table], uri: str | Path) -> str:
    """Write ``parts`` (one schema) as one Parquet file, each part its own row group (so a reader can take part ``i``
    alone with ``read_row_group(i)``), atomically as ``write_table``. Returns the path written."""
    fs, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}.parquet"
    with pq.ParquetWriter(tmp, parts[0].schema, filesystem=fs) as writer:
        for part in parts:
            writer.write_table(part, row_group_size=max(part.num_rows, 1))
    fs.move(tmp, path)
    return str(uri)


def write_json(obj: Any, uri: str | Path) -> str:
    return write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", uri)


def write_text(text: str, uri: str | Path) -> str:
    """Write ``text`` (UTF-8) atomically: temporary name, then rename."""
    fs, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}{Path(path).suffix}"
    with fs.open_output_stream(tmp) as out:
        out.write(text.encode())
    fs.move(tmp, path)
    return str(uri)


def read_json(uri: str | Path) -> Any:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as src:
        return json.loads(src.read().decode())


def read_text(uri: str | Path) -> str:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as src:
        return src.read().decode("utf-8")
