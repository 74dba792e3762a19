"""Row-level validation of a table against its data contract: good rows are cast to the contract, bad rows are kept
with the reason they failed, so no row ever vanishes (``len(valid) + len(rejected) == len(input)``).

Checks, field by field in contract order, then across rows; a row is reported for the first check it fails only:

1. the value is null (``"query: missing (null)"``: importers leave text null for an unknown query or document);
2. a text field is empty or whitespace-only, unless the field is in ``MAY_BE_EMPTY`` (title);
3. a numeric field holds text that is not a number (``"score: 'abc' is not a number"``), or a number that is not
   finite, not whole (integer fields) or outside the field's range (``"label: 7 is outside 0–4"``; float32 fields
   must fit float32). Numbers in text ("3", " 2.0 ") and whole floats (3.0) convert fine;
4. a repeat of a (query_id, doc_id) key already seen in an earlier *valid* row: the first one is kept, later ones are
   rejected naming its row. A scores table may hold several models, so there the key also includes ``model``.

A column missing from the whole table, or one whose Arrow type can never become the contract's (a list where a
string is due), is a wrong file rather than a bad row: that raises ``ValueError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker.data.schemas import KEY, MAX_LABEL, MAY_BE_EMPTY, MIN_LABEL, REJECTED, contract

# Allowed range of integer fields; a field not listed may take any value of its Arrow type.
_INTEGER_RANGE = {"label": (MIN_LABEL, MAX_LABEL)}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# What Arrow's string→float cast accepts, so text that does not match gets a reason instead of failing the cast.
_NUMBER_TEXT = r"(?i)^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^[+-]?(nan|inf|infinity)$"


@dataclass
class Validated:
    """The rows of one table that meet its contract (cast exactly to it) and those that do not (``REJECTED``)."""

    valid: pa.Table
    rejected: pa.Table
    rows: np.ndarray  # the input row index of each valid row, to trace a valid row back to its source

    @property
    def counts(self) -> dict[str, int]:
        """Row counts for stage summaries: ``in`` is always ``valid + rejected``."""
        return {
            "in": self.valid.num_rows + self.rejected.num_rows,
            "valid": self.valid.num_rows,
            "rejected": self.rejected.num_rows,
        }


class _Rejections:
    """Which rows have failed a check so far, and why; later checks only look at rows still standing."""

    def __init__(self, num_rows: int) -> None:
        self.mask = np.zeros(num_rows, dtype=bool)
        self.reasons: dict[int, str] = {}

    def reject(self, fails: pa.ChunkedArray, values: pa.ChunkedArray, field: str, problem: str) -> None:
        """Reject rows where ``fails`` is true with ``"<field>: <value> <problem>"``, if not rejected already."""
        rows = np.flatnonzero(pc.fill_null(fails, False).to_numpy(zero_copy_only=False) & ~self.mask)
        for row, value in zip(rows.tolist(), values.take(pa.array(rows, pa.int64())).to_pylist(), strict=True):
            self.reasons[row] = f"{field}: {value!r} {problem}"
        self.mask[rows] = True

    def reject_missing(self, column: pa.ChunkedArray, field: str) -> None:
        rows = np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False) & ~self.mask)
        self.reasons.update(dict.fromkeys(rows.tolist(), f"{field}: missing (null)"))
        self.mask[rows] = True


def validate_table(table: pa.Table, contract_name: str, *, check_duplicates: bool = True) -> Validated:
    """Split ``table`` into rows that meet contract ``contract_name`` and rejected rows with their reasons.
    ``check_duplicates=False`` skips check 4, for a caller that finds repeats across tables itself.

    ``valid`` keeps the input's row order and has exactly the contract's schema (extra columns dropped); ``rejected``
    is ordered by row index and its ``record`` holds the whole original row, extra columns included, as JSON.
    """
    schema = contract(contract_name)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(
            f"{contract_name} table lacks column(s) {', '.join(missing)}; "
            f"the {contract_name} contract needs {', '.join(schema.names)}"
        )
    rejections = _Rejections(table.num_rows)
    converted = {field.name: _check_field(table[field.name], field, rejections) for field in schema}
    key = [*KEY, "model"] if contract_name == "scores" else list(KEY)
    if check_duplicates:
        _reject_duplicates({name: converted[name] for name in key}, rejections)

    keep = pa.array(~rejections.mask)
    valid = pa.Table.from_arrays(
        [pc.cast(converted[field.name].filter(keep), field.type, safe=False) for field in schema], schema=schema
    )
    rejected = rejected_table(table, contract_name, rejections.reasons)
    return Validated(valid=valid, rejected=rejected, rows=np.flatnonzero(~rejections.mask))


def _check_field(column: pa.ChunkedArray, field: pa.Field, rejections: _Rejections) -> pa.ChunkedArray:
    """Run the checks of one field; returns the column converted to string (text fields) or float64 (numbers),
    whose valid rows cast losslessly to the contract type once the bad rows are filtered out."""
    if pa.types.is_dictionary(column.type):  # Parquet written from categoricals comes back dictionary-encoded
        column = pc.cast(column, column.type.value_type)
    rejections.reject_missing(column, field.name)
    if pa.types.is_string(field.type):
        return _check_text(column, field, rejections)
    numbers = _as_numbers(column, field, rejections)
    rejections.reject(pc.invert(pc.is_finite(numbers)), column, field.name, "is not finite")
    if pa.types.is_integer(field.type):
        rejections.reject(pc.not_equal(pc.floor(numbers), numbers), column, field.name, "is not an integer")
        info = np.iinfo(field.type.to_pandas_dtype())
        low, high = _INTEGER_RANGE.get(field.name, (int(info.min), int(info.max)))
        outside = pc.or_(pc.less(numbers, low), pc.greater(numbers, high))
        rejections.reject(outside, column, field.name, f"is outside {low}–{high}")
    else:  # float32 is the only float type of the contracts
        rejections.reject(pc.greater(pc.abs(numbers), _FLOAT32_MAX), column, field.name, "does not fit float32")
    return numbers


def _check_text(column: pa.ChunkedArray, field: pa.Field, rejections: _Rejections) -> pa.ChunkedArray:
    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ValueError(f"column {field.name} has type {column.type}, which cannot become {field.type}") from err
    if field.name not in MAY_BE_EMPTY:
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
        rejections.reject(blank, column, field.name, "is empty or whitespace-only")
    return text


def _as_numbers(column: pa.ChunkedArray, field: pa.Field, rejections: _Rejections) -> pa.ChunkedArray:
    """``column`` as float64; text that is not a number is rejected (and becomes null here)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        trimmed = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        is_number = pc.match_substring_regex(trimmed, _NUMBER_TEXT)
        rejections.reject(pc.invert(is_number), column, field.name, "is not a number")
        return pc.cast(pc.if_else(is_number, trimmed, pa.scalar(None, pa.string())), pa.float64())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return pc.cast(column, pa.float64())
    raise ValueError(f"column {field.name} has type {kind}, which cannot become {field.type}")


def _reject_duplicates(key: dict[str, pa.ChunkedArray], rejections: _Rejections) -> None:
    """Reject every row whose key an earlier row still standing already has, naming that first row."""
    standing = pa.array(np.flatnonzero(~rejections.mask))
    rows = pa.table({**{name: column.take(standing) for name, column in key.items()}, "_row": standing})
    first = rows.group_by(list(key), use_threads=False).aggregate([("_row", "min")])
    paired = rows.join(first, keys=list(key))
    repeats = paired.filter(pc.not_equal(paired["_row"], paired["_row_min"])).sort_by("_row")
    names = ", ".join(key)
    for repeat in repeats.to_pylist():
        values = tuple(repeat[name] for name in key)
        rejections.reasons[repeat["_row"]] = f"duplicate ({names}) {values!r}, first seen at row {repeat['_row_min']}"
        rejections.mask[repeat["_row"]] = True


def rejected_table(table: pa.Table, contract_name: str, reasons: dict[int, str]) -> pa.Table:
    """Rows ``reasons`` names (input row index → reason) of ``table`` in the ``REJECTED`` layout, ordered by row."""
    rows = sorted(reasons)
    records = table.take(pa.array(rows, pa.int64())).to_pylist()
    return pa.Table.from_pydict(
        {
            "table": [contract_name] * len(rows),
            "row": rows,
            "reason": [reasons[row] for row in rows],
            "record": [_to_json(record) for record in records],
        },
        schema=REJECTED,
    )


def _to_json(record: dict[str, Any]) -> str:
    """One row as JSON text; NaN and infinities become strings because JSON has no such numbers."""
    plain = {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(plain, ensure_ascii=False, default=str)
