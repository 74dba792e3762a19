"""validate_table: which rows are rejected and why, what the valid table looks like, and that no row vanishes."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from disranker.data import io
from disranker.data.schemas import JUDGMENTS, REJECTED, SCORES
from disranker.data.validate import validate_table


def judgment(doc_id: str, **changes) -> dict:
    return {
        "query_id": "q1",
        "query": "a query",
        "doc_id": doc_id,
        "title": "T",
        "summary": "text",
        "label": 2,
    } | changes


def reasons(validated) -> dict[int, str]:
    return dict(zip(validated.rejected["row"].to_pylist(), validated.rejected["reason"].to_pylist(), strict=True))


def test_each_bad_row_is_rejected_with_the_first_failing_check():
    rows = [
        judgment("d0", title=""),  # fine: title may be empty
        judgment("d1", query=None),
        judgment("d2", summary="  \t"),
        judgment("d3", label=7),
        judgment("d4", label=-1),
        judgment("d5", query="", summary="", label=9),  # three problems: the first field in contract order wins
        judgment("d6", label=4),
    ]
    validated = validate_table(pa.Table.from_pylist(rows), "judgments")

    assert validated.valid["doc_id"].to_pylist() == ["d0", "d6"]
    assert reasons(validated) == {
        1: "query: missing (null)",
        2: "summary: '  \\t' is empty or whitespace-only",
        3: "label: 7 is outside 0–4",
        4: "label: -1 is outside 0–4",
        5: "query: '' is empty or whitespace-only",
    }
    assert validated.counts == {"in": 7, "valid": 2, "rejected": 5}
    assert validated.rejected.schema == REJECTED
    assert set(validated.rejected["table"].to_pylist()) == {"judgments"}


def test_values_of_another_type_convert_when_they_can():
    labels = ["3", " 2.0 ", "x", "2.5", "nan", "-1", None]
    table = pa.table(
        {
            "query_id": ["q"] * 7,
            "query": ["a"] * 7,
            "doc_id": [f"d{i}" for i in range(7)],
            "title": [""] * 7,
            "summary": ["s"] * 7,
            "label": labels,
        }
    )
    validated = validate_table(table, "judgments")

    assert validated.valid["label"].to_pylist() == [3, 2]
    assert reasons(validated) == {
        2: "label: 'x' is not a number",
        3: "label: '2.5' is not an integer",
        4: "label: 'nan' is not finite",
        5: "label: '-1' is outside 0–4",
        6: "label: missing (null)",
    }


def test_whole_floats_and_integer_ids_convert():
    table = pa.table(
        {
            "query_id": pa.array([1, 2], pa.int64()),
            "query": ["a", "b"],
            "doc_id": ["d", "d"],
            "title": ["t", "t"],
            "summary": ["s", "s"],
            "label": pa.array([3.0, 0.0], pa.float64()),
        }
    )
    validated = validate_table(table, "judgments")
    assert validated.valid.to_pylist() == [
        {"query_id": "1", "query": "a", "doc_id": "d", "title": "t", "summary": "s", "label": 3},
        {"query_id": "2", "query": "b", "doc_id": "d", "title": "t", "summary": "s", "label": 0},
    ]


def test_scores_reject_non_numbers_and_non_finite_values():
    scores = pa.table(
        {
            "query_id": ["q"] * 6,
            "doc_id": ["a", "b", "c", "d", "e", "f"],
            "score": pa.array([1.5, float("nan"), float("inf"), -float("inf"), 1e39, 0.25], pa.float64()),
            "model": ["m"] * 6,
        }
    )
    validated = validate_table(scores, "scores")
    assert validated.valid.to_pylist() == [
        {"query_id": "q", "doc_id": "a", "score": 1.5, "model": "m"},
        {"query_id": "q", "doc_id": "f", "score": 0.25, "model": "m"},
    ]
    assert reasons(validated) == {
        1: "score: nan is not finite",
        2: "score: inf is not finite",
        3: "score: -inf is not finite",
        4: "score: 1e+39 does not fit float32",
    }
    assert json.loads(validated.rejected["record"][0].as_py())["score"] == "nan"  # JSON has no NaN

    text_scores = scores.set_column(2, "score", pa.array(["1.5", "abc", "2", "3", "4", "5"]))
    assert reasons(validate_table(text_scores, "scores")) == {1: "score: 'abc' is not a number"}


def test_duplicate_keeps_the_first_and_names_it():
    rows = [
        judgment("d1", summary=""),  # rejected, so the next d1 is the first valid one
        judgment("d1", label=1),
        judgment("d2"),
        judgment("d1", label=3),
        judgment("d2", query_id="q2"),  # another query: not a duplicate
        judgment("d2", label=0),
    ]
    validated = validate_table(pa.Table.from_pylist(rows), "judgments")
    assert validated.valid.select(["query_id", "doc_id", "label"]).to_pylist() == [
        {"query_id": "q1", "doc_id": "d1", "label": 1},
        {"query_id": "q1", "doc_id": "d2", "label": 2},
        {"query_id": "q2", "doc_id": "d2", "label": 2},
    ]
    assert reasons(validated) == {
        0: "summary: '' is empty or whitespace-only",
        3: "duplicate (query_id, doc_id) ('q1', 'd1'), first seen at row 1",
        5: "duplicate (query_id, doc_id) ('q1', 'd2'), first seen at row 2",
    }


def test_scores_of_two_models_for_one_pair_are_not_duplicates():
    scores = pa.table({"query_id": ["q"] * 3, "doc_id": ["d"] * 3, "score": [1.0, 2.0, 3.0], "model": ["a", "b", "a"]})
    validated = validate_table(scores, "scores")
    assert validated.valid["model"].to_pylist() == ["a", "b"]
    assert reasons(validated) == {2: "duplicate (query_id, doc_id, model) ('q', 'd', 'a'), first seen at row 0"}


def test_missing_column_raises_naming_it_and_the_contract():
    table = pa.Table.from_pylist([judgment("d1")]).drop_columns(["summary", "label"])
    with pytest.raises(ValueError, match=r"judgments table lacks column\(s\) summary, label"):
        validate_table(table, "judgments")


def test_column_that_can_never_convert_raises():
    table = pa.Table.from_pylist([judgment("d1")]).set_column(5, "label", pa.array([[1]]))
    with pytest.raises(ValueError, match="column label has type list<item: int64>"):
        validate_table(table, "judgments")


def test_valid_is_cast_to_the_contract_and_records_keep_extra_columns(tmp_path):
    rows = [judgment("d1") | {"source": "web"}, judgment("d2", label=5) | {"source": "app"}]
    table = pa.Table.from_pylist(rows).cast(
        pa.schema(
            [
                *[pa.field(f.name, pa.large_string()) for f in JUDGMENTS][:5],
                ("label", pa.int64()),
                ("source", pa.string()),
            ]
        )
    )
    validated = validate_table(table, "judgments")

    assert validated.valid.schema == JUDGMENTS
    assert json.loads(validated.rejected["record"][0].as_py()) == rows[1]
    # Both outputs are plain tables the io helpers can write.
    io.write_table(validated.rejected, tmp_path / "rejected" / "judgments.parquet")
    assert io.read_table(tmp_path / "rejected" / "judgments.parquet").equals(validated.rejected)


def test_dictionary_columns_and_row_order_are_kept():
    table = pa.table(
        {
            "query_id": pa.array(["q2", "q1", "q3"]).dictionary_encode(),
            "doc_id": ["d", "d", "d"],
            "score": pa.array([0.5, 0.25, 1.0], pa.float32()),
            "model": pa.array(["m", "m", "m"]).dictionary_encode(),
        }
    )
    validated = validate_table(table, "scores")
    assert validated.valid.schema == SCORES
    assert validated.valid["query_id"].to_pylist() == ["q2", "q1", "q3"]


def test_empty_table_gives_empty_outputs():
    validated = validate_table(JUDGMENTS.empty_table(), "judgments")
    assert validated.counts == {"in": 0, "valid": 0, "rejected": 0}
    assert validated.valid.schema == JUDGMENTS


def test_unknown_contract_raises():
    with pytest.raises(ValueError, match="unknown table contract 'nope'"):
        validate_table(pa.table({"a": [1]}), "nope")
