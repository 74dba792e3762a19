"""MS MARCO passage and BEIR importers: exact rows from small files, and unknown ids kept for the validator."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from disranker.data.importers import import_beir, import_msmarco
from disranker.data.validate import validate_table


def write_msmarco(folder: Path) -> dict[str, Path]:
    files = {
        # p3 has a tab inside its passage; p9 is never named so it must not be kept.
        "collection": "p1\tthe first passage\np2\tsecond passage\np3\tthird\twith a tab\np9\tunused\n",
        "queries": "q1\twhat is first\nq2\twhat is second\nq3\tunjudged query\n",
        "qrels": "q1 0 p1 1\nq2 0 p2 2\nq2 0 p404 1\n",
        "run": "q1 Q0 p1 1 9.5 bm25\nq1 Q0 p3 2 7.0 bm25\nq2 Q0 p2 1 3.0 bm25\nq3 Q0 p1 1 1.0 bm25\n",
    }
    for name, text in files.items():
        (folder / f"{name}.tsv").write_text(text)
    return {name: folder / f"{name}.tsv" for name in files}


def test_msmarco_judgments_without_a_run_are_the_qrels(tmp_path):
    files = write_msmarco(tmp_path)
    tables = import_msmarco(files["collection"], files["queries"], files["qrels"])
    assert tables.pool is None
    assert tables.judgments.to_pylist() == [
        {"query_id": "q1", "query": "what is first", "doc_id": "p1", "title": "", "summary": "the first passage",
         "label": 1},
        {"query_id": "q2", "query": "what is second", "doc_id": "p2", "title": "", "summary": "second passage",
         "label": 2},
        {"query_id": "q2", "query": "what is second", "doc_id": "p404", "title": "", "summary": None, "label": 1},
    ]  # fmt: skip


def test_msmarco_with_a_run_adds_label_zero_candidates_and_a_pool(tmp_path):
    files = write_msmarco(tmp_path)
    tables = import_msmarco(files["collection"], files["queries"], files["qrels"], run=files["run"])

    judgments = tables.judgments.select(["query_id", "doc_id", "summary", "label"]).to_pylist()
    assert judgments == [
        {"query_id": "q1", "doc_id": "p1", "summary": "the first passage", "label": 1},
        {"query_id": "q2", "doc_id": "p2", "summary": "second passage", "label": 2},
        {"query_id": "q2", "doc_id": "p404", "summary": None, "label": 1},
        # q1/p3 is a candidate the qrels do not grade; q3 has no qrels at all, so q3/p1 stays out of the judgments.
        {"query_id": "q1", "doc_id": "p3", "summary": "third\twith a tab", "label": 0},
    ]
    assert tables.pool.to_pylist() == [
        {"query_id": "q1", "query": "what is first", "doc_id": "p1", "title": "", "summary": "the first passage"},
        {"query_id": "q1", "query": "what is first", "doc_id": "p3", "title": "", "summary": "third\twith a tab"},
        {"query_id": "q2", "query": "what is second", "doc_id": "p2", "title": "", "summary": "second passage"},
        {"query_id": "q3", "query": "unjudged query", "doc_id": "p1", "title": "", "summary": "the first passage"},
    ]


def test_msmarco_unknown_passage_is_rejected_by_the_validator_not_dropped(tmp_path):
    files = write_msmarco(tmp_path)
    judgments = import_msmarco(files["collection"], files["queries"], files["qrels"]).judgments
    validated = validate_table(judgments, "judgments")
    assert validated.counts == {"in": 3, "valid": 2, "rejected": 1}
    assert validated.rejected["reason"].to_pylist() == ["summary: missing (null)"]
    assert json.loads(validated.rejected["record"][0].as_py())["doc_id"] == "p404"


def test_msmarco_reads_gzip_inputs(tmp_path):
    files = write_msmarco(tmp_path)
    gz = tmp_path / "collection.tsv.gz"
    gz.write_bytes(gzip.compress(files["collection"].read_bytes()))
    judgments = import_msmarco(gz, files["queries"], files["qrels"]).judgments
    assert judgments["summary"].to_pylist() == ["the first passage", "second passage", None]


def write_beir(folder: Path, qrels: str) -> Path:
    corpus = [
        {"_id": "d1", "title": "First", "text": "first document", "metadata": {"url": "x"}},
        {"_id": "d2", "text": "no title key"},
        {"_id": "d3", "title": "Unused", "text": "never judged"},
        {"_id": "d4", "title": "Empty", "text": ""},
    ]
    queries = [{"_id": "1", "text": "query one"}, {"_id": "2", "text": "query two"}]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in corpus) + "\n")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


BEIR_QRELS = "query-id\tcorpus-id\tscore\n1\td1\t2\n2\td2\t1\n2\td4\t0\n9\td1\t1\n1\td99\t1\n"


def test_beir_split_gives_exact_judgments(tmp_path):
    judgments = import_beir(write_beir(tmp_path / "scifact", BEIR_QRELS), split="test")
    assert judgments.to_pylist() == [
        {"query_id": "1", "query": "query one", "doc_id": "d1", "title": "First", "summary": "first document",
         "label": 2},
        {"query_id": "2", "query": "query two", "doc_id": "d2", "title": "", "summary": "no title key", "label": 1},
        {"query_id": "2", "query": "query two", "doc_id": "d4", "title": "Empty", "summary": "", "label": 0},
        {"query_id": "9", "query": None, "doc_id": "d1", "title": "First", "summary": "first document", "label": 1},
        {"query_id": "1", "query": "query one", "doc_id": "d99", "title": None, "summary": None, "label": 1},
    ]  # fmt: skip


def test_beir_bad_rows_reach_the_rejected_table_with_reasons(tmp_path):
    judgments = import_beir(write_beir(tmp_path / "scifact", BEIR_QRELS))
    validated = validate_table(judgments, "judgments")
    assert validated.valid["doc_id"].to_pylist() == ["d1", "d2"]
    assert dict(zip(validated.rejected["row"].to_pylist(), validated.rejected["reason"].to_pylist(), strict=True)) == {
        2: "summary: '' is empty or whitespace-only",
        3: "query: missing (null)",
        4: "title: missing (null)",
    }


def test_beir_qrels_without_header_is_an_error(tmp_path):
    folder = write_beir(tmp_path / "scifact", "1\td1\t2\n")
    with pytest.raises(ValueError, match="header is"):
        import_beir(folder)


def test_beir_corpus_line_that_is_not_json_names_the_line(tmp_path):
    folder = write_beir(tmp_path / "scifact", BEIR_QRELS)
    with (folder / "corpus.jsonl").open("a") as corpus:
        corpus.write("{not json\n")
    with pytest.raises(ValueError, match=r"corpus.jsonl: line 6 is not a JSON object"):
        import_beir(folder)
