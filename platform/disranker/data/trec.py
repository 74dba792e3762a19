"""TREC run and qrels files, and the fast line reader that the text importers share.

Both formats hold one record per line, fields separated by any run of spaces or tabs; blank lines are skipped:

- run:   ``query_id Q0 doc_id rank score run_name`` (the ``Q0`` column is ignored on reading);
- qrels: ``query_id iteration doc_id relevance`` (the iteration column, usually ``0``, is ignored).

A malformed line (wrong field count, a score or relevance that is not a number) makes the whole file unreadable: it is
a broken file rather than a bad row, so the error names the file and line instead of returning part of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from disranker.data import io
from disranker.data.schemas import SCORES

# Arrow's CSV reader cuts a file into blocks at line ends; one line must fit in a block, and MS MARCO / BEIR lines are
# far shorter than this.
LINE_BLOCK_BYTES = 64 << 20
# A character that never occurs in text files, so the CSV reader sees each line as one field.
_NO_DELIMITER = "\x1f"


def iter_line_batches(uri: str | Path) -> Iterator[pa.Array]:
    """The lines of a text file, without line ends, in batches of Arrow strings; blank lines are kept (as "") so
    a running index gives the line number. ``.gz``/``.bz2``/``.zst`` files are decompressed by their extension."""
    fs, path = io.resolve(uri)
    if fs.get_file_info(path).size == 0:
        return  # Arrow's CSV reader refuses an empty file; an empty file simply has no lines
    reader_options = pcsv.ReadOptions(column_names=["line"], block_size=LINE_BLOCK_BYTES)
    parse_options = pcsv.ParseOptions(
        delimiter=_NO_DELIMITER, quote_char=False, escape_char=False, ignore_empty_lines=False
    )
    convert_options = pcsv.ConvertOptions(column_types={"line": pa.string()})
    with fs.open_input_stream(path) as stream:
        for batch in pcsv.open_csv(stream, reader_options, parse_options, convert_options):
            yield batch.column(0)


def read_fields(uri: str | Path, names: list[str]) -> pa.Table:
    """A whitespace-separated file as a table of string columns ``names``; every non-blank line must have exactly
    ``len(names)`` fields. Adds ``line`` (1-based line number) so callers can point at a line."""
    lines = pa.chunked_array(list(iter_line_batches(uri)), pa.string())
    line_numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    trimmed = pc.utf8_trim_whitespace(lines)
    not_blank = pc.not_equal(trimmed, "")
    parts = pc.utf8_split_whitespace(trimmed.filter(not_blank))
    line_numbers = line_numbers.filter(not_blank)
    bad = pc.not_equal(pc.list_value_length(parts), len(names))
    if pc.any(bad).as_py():
        first = pc.index(bad, True).as_py()
        raise ValueError(
            f"{uri}: line {line_numbers[first].as_py()} has {len(parts[first])} fields, expected {len(names)} "
            f"({' '.join(names)}): {' '.join(parts[first].as_py())!r}"
        )
    columns = [pc.list_element(parts, i) for i in range(len(names))]
    return pa.table([*columns, line_numbers], names=[*names, "line"])


def _parse_numbers(column: pa.ChunkedArray, to: pa.DataType, what: str, uri: str | Path) -> pa.ChunkedArray:
    try:
        return pc.cast(column, to)
    except pa.ArrowInvalid as err:  # Arrow's message quotes the value that failed
        raise ValueError(f"{uri}: a {what} is not a number: {err}") from err


def read_trec_qrels(uri: str | Path) -> pa.Table:
    """A TREC qrels file as (query_id: str, doc_id: str, label: int64), in file order.

    The label stays int64 so a grade outside the contract's range reaches the validator as a rejectable row rather
    than failing here."""
    fields = read_fields(uri, ["query_id", "iteration", "doc_id", "label"])
    label = _parse_numbers(fields["label"], pa.int64(), "relevance", uri)
    return pa.table({"query_id": fields["query_id"], "doc_id": fields["doc_id"], "label": label})


def read_trec_run(uri: str | Path, model: str | None = None) -> pa.Table:
    """A TREC run file as a ``scores`` table, in file order; ``model`` defaults to each line's run name.

    The rank column is dropped: the scores contract keeps only scores, and ranks follow from them."""
    fields = read_fields(uri, ["query_id", "q0", "doc_id", "rank", "score", "run_name"])
    score = _parse_numbers(fields["score"], pa.float32(), "score", uri)
    model_column = fields["run_name"] if model is None else pa.repeat(model, fields.num_rows)
    return pa.Table.from_arrays([fields["query_id"], fields["doc_id"], score, model_column], schema=SCORES)


def _check_writable(scores: pa.Table, run_name: str | None) -> str:
    """The run name to write; raises when the table cannot become a well-formed run file."""
    models = pc.unique(scores["model"]).to_pylist() if "model" in scores.column_names else []
    if len(models) > 1:
        shown = ", ".join(map(str, models[:5]))
        raise ValueError(f"scores hold {len(models)} models ({shown}); write one run per model")
    name = run_name if run_name is not None else (models[0] if models else None)
    if name is None:
        raise ValueError("no run_name given and the scores table has no model value to take it from")
    if not name or any(ch.isspace() for ch in name):
        raise ValueError(f"run name {name!r} must be non-empty and without whitespace: TREC fields are space-separated")
    for column in ("query_id", "doc_id"):
        has_space = pc.match_substring_regex(scores[column], r"\s")
        if pc.any(has_space).as_py():
            value = scores[column][pc.index(has_space, True).as_py()].as_py()
            raise ValueError(f"{column} {value!r} contains whitespace, which a TREC run cannot hold")
    score = scores["score"]
    if score.null_count or not pc.all(pc.is_finite(score)).as_py():
        raise ValueError("scores must be finite and non-null; validate the table against the scores contract first")
    return name


def _text_bytes(lines: pa.StringArray) -> pa.Buffer:
    """All characters of ``lines`` back to back: a string array already stores them contiguously, so no copy."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def write_trec_run(scores: pa.Table, uri: str | Path, run_name: str | None = None) -> str:
    """Write a ``scores`` table as a TREC run file; returns ``uri``.

    Queries come in ascending query_id order; within a query, rank 1.. by score descending, ties by doc_id ascending,
    so the file is the same on every run. Scores are written as the shortest text that reads back to the same
    float32. ``run_name`` defaults to the table's single ``model`` value; a table with several models is an error.
    """
    name = _check_writable(scores, run_name)
    ranked = scores.select(["query_id", "doc_id", "score"]).sort_by(
        [("query_id", "ascending"), ("score", "descending"), ("doc_id", "ascending")]
    )
    query_ids = ranked["query_id"].combine_chunks()
    position = np.arange(len(query_ids), dtype=np.int64)
    starts_query = np.ones(len(query_ids), dtype=bool)
    starts_query[1:] = pc.not_equal(query_ids[1:], query_ids[:-1]).to_numpy(zero_copy_only=False)
    # Each row's rank is its distance from the first row of its query, which a running max of query starts gives.
    rank = position - np.maximum.accumulate(np.where(starts_query, position, 0)) + 1
    score_text = pc.cast(pc.cast(ranked["score"], pa.float32(), safe=False), pa.string())
    lines = pc.binary_join_element_wise(
        ranked["query_id"], "Q0", ranked["doc_id"], pc.cast(pa.array(rank), pa.string()), score_text, name, " "
    )
    lines = pc.binary_join_element_wise(lines, "", "\n")  # a trailing newline on every line, the last one included

    fs, path = io.resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    # The temporary name ends like the target so a ``.gz`` run is compressed, as the reader expects.
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
    with fs.open_output_stream(tmp) as out:
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk):
                out.write(_text_bytes(chunk))
    fs.move(tmp, path)
    return str(uri)
