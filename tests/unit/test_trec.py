"""TREC run/qrels files: exact text written, rank and tie order, round trip, and loud errors on broken files."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pytest

from disranker.data.schemas import SCORES
from disranker.data.trec import iter_line_batches, read_trec_qrels, read_trec_run, write_trec_run


def scores_table(rows: list[tuple[str, str, float]], model: str = "student") -> pa.Table:
    return pa.Table.from_pylist(
        [{"query_id": q, "doc_id": d, "score": s, "model": model} for q, d, s in rows], schema=SCORES
    )


SCORES_ROWS = [
    ("q2", "b", 1.0),
    ("q1", "z", 0.1),
    ("q1", "a", 0.1),
    ("q1", "c", 2.5),
    ("q2", "a", 1.0),
    ("q1", "m", -3.0),
]


def test_write_ranks_by_score_then_doc_id_and_names_the_run_after_the_model(tmp_path):
    path = write_trec_run(scores_table(SCORES_ROWS), tmp_path / "runs" / "student.trec")
    assert (tmp_path / "runs" / "student.trec").read_text() == (
        "q1 Q0 c 1 2.5 student\n"
        "q1 Q0 a 2 0.1 student\n"  # tie at 0.1: doc_id a before z
        "q1 Q0 z 3 0.1 student\n"
        "q1 Q0 m 4 -3 student\n"
        "q2 Q0 a 1 1 student\n"
        "q2 Q0 b 2 1 student\n"
    )
    assert path == str(tmp_path / "runs" / "student.trec")


def test_round_trip_gives_the_same_scores_and_ranks(tmp_path):
    original = scores_table(SCORES_ROWS)
    first = tmp_path / "first.trec"
    write_trec_run(original, first)
    back = read_trec_run(first)

    assert back.schema == SCORES
    order = [("query_id", "ascending"), ("doc_id", "ascending")]
    assert back.sort_by(order).equals(original.sort_by(order))  # float32 scores come back bit for bit
    write_trec_run(back, tmp_path / "second.trec")
    assert (tmp_path / "second.trec").read_text() == first.read_text()


def test_run_name_and_model_overrides(tmp_path):
    write_trec_run(scores_table([("q", "d", 0.5)]), tmp_path / "run.trec", run_name="bm25")
    assert (tmp_path / "run.trec").read_text() == "q Q0 d 1 0.5 bm25\n"
    assert read_trec_run(tmp_path / "run.trec", model="baseline")["model"].to_pylist() == ["baseline"]


def test_gzip_run_is_compressed_and_read_back(tmp_path):
    write_trec_run(scores_table(SCORES_ROWS[:2]), tmp_path / "run.trec.gz")
    assert gzip.decompress((tmp_path / "run.trec.gz").read_bytes()) == b"q1 Q0 z 1 0.1 student\nq2 Q0 b 1 1 student\n"
    assert read_trec_run(tmp_path / "run.trec.gz").num_rows == 2


def test_write_refuses_what_a_run_file_cannot_hold(tmp_path):
    two_models = pa.concat_tables([scores_table([("q", "d", 1.0)], "a"), scores_table([("q", "d", 2.0)], "b")])
    with pytest.raises(ValueError, match="2 models"):
        write_trec_run(two_models, tmp_path / "run.trec")
    with pytest.raises(ValueError, match="contains whitespace"):
        write_trec_run(scores_table([("q", "doc 1", 1.0)]), tmp_path / "run.trec")
    with pytest.raises(ValueError, match="must be finite"):
        write_trec_run(scores_table([("q", "d", float("nan"))]), tmp_path / "run.trec")
    with pytest.raises(ValueError, match="without whitespace"):
        write_trec_run(scores_table([("q", "d", 1.0)]), tmp_path / "run.trec", run_name="my run")
    assert not (tmp_path / "run.trec").exists()


def test_read_qrels_accepts_tabs_spaces_and_blank_lines(tmp_path):
    (tmp_path / "qrels.txt").write_text("1 0 7 1\n\n2\t0\t8   0\r\n3 0 9 -1\n")
    qrels = read_trec_qrels(tmp_path / "qrels.txt")
    assert qrels.to_pylist() == [
        {"query_id": "1", "doc_id": "7", "label": 1},
        {"query_id": "2", "doc_id": "8", "label": 0},
        {"query_id": "3", "doc_id": "9", "label": -1},
    ]


def test_broken_lines_name_file_and_line(tmp_path):
    (tmp_path / "qrels.txt").write_text("1 0 7 1\n\n2 0 8\n")
    with pytest.raises(ValueError, match=r"qrels.txt: line 3 has 3 fields, expected 4"):
        read_trec_qrels(tmp_path / "qrels.txt")
    (tmp_path / "qrels.txt").write_text("1 0 7 high\n")
    with pytest.raises(ValueError, match="relevance is not a number.*'high'"):
        read_trec_qrels(tmp_path / "qrels.txt")
    (tmp_path / "run.txt").write_text("1 Q0 7 1 abc run\n")
    with pytest.raises(ValueError, match="score is not a number.*'abc'"):
        read_trec_run(tmp_path / "run.txt")


def test_empty_files_read_as_empty_tables(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert list(iter_line_batches(tmp_path / "empty.txt")) == []
    assert read_trec_run(tmp_path / "empty.txt").schema == SCORES
    assert read_trec_qrels(tmp_path / "empty.txt").num_rows == 0
