"""Importers of public passage-ranking data (MS MARCO passage, BEIR) into the judgments and pool contracts.

They return unvalidated tables with the contract's columns; callers run ``validate_table`` on them. A relevance
judgment that names a query or document missing from the text files is not dropped: its row comes back with that
text null, so the validator rejects it as ``"query: missing (null)"``, ``"summary: missing (null)"`` (MS MARCO)
or ``"title: missing (null)"`` (BEIR) and it shows up, with its ids, in the rejected table. Labels stay int64 until
the validator casts them, so an out-of-range grade is rejected there with its value.

Large inputs (MS MARCO's 8.8 M passages) are streamed: the judgments and the run are read first, then only the texts
of queries and documents they name are kept while the text files are read batch by batch (TSV) or line by line
(JSONL). ``.gz``/``.bz2`` inputs are read as they are.
"""

from __future__ import annotations

import io as stdio
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from disranker.data import io
from disranker.data.trec import iter_line_batches, read_trec_qrels, read_trec_run

# A TSV line is ``id<TAB>text``; a line without a tab is an id with empty text (rejected later, not lost).
_ID_AND_TEXT = r"^(?P<id>[^\t]*)(?:\t(?P<text>.*))?$"
_BEIR_QRELS_HEADER = ["query-id", "corpus-id", "score"]


@dataclass
class MsMarcoTables:
    """``judgments`` (qrels, plus label-0 run candidates when a run is given) and ``pool`` (the run's pairs)."""

    judgments: pa.Table
    pool: pa.Table | None


def import_msmarco(
    collection: str | Path, queries: str | Path, qrels: str | Path, run: str | Path | None = None
) -> MsMarcoTables:
    """MS MARCO passage ranking as judgments (and a pool when ``run`` is given).

    Inputs: ``collection.tsv`` (pid TAB passage), ``queries.tsv`` (qid TAB query), qrels in TREC qrels format and an
    optional candidate run in TREC run format (``qid Q0 pid rank score tag``; convert a ``top1000`` TSV with
    ``cut -f1,2`` plus dummy columns). Passages have no title, so title is "".

    judgments = the qrels rows in file order, then each run candidate of a *judged* query that the qrels do not
    grade, with label 0, in run order (an unjudged query says nothing about relevance, so its candidates join only
    the pool). pool = every pair of the run, in run order.
    """
    graded = read_trec_qrels(qrels)
    candidates = read_trec_run(run).select(["query_id", "doc_id"]) if run is not None else None
    pairs = [graded] if candidates is None else [graded, candidates]
    query_text = _read_tsv_texts(queries, _unique_ids(pairs, "query_id"))
    passage_text = _read_tsv_texts(collection, _unique_ids(pairs, "doc_id"))

    def with_text(table: pa.Table) -> pa.Table:
        return _attach_texts(table, query_text, passage_text)

    if candidates is None:
        return MsMarcoTables(judgments=with_text(graded), pool=None)
    judged = candidates.filter(pc.is_in(candidates["query_id"], value_set=pc.unique(graded["query_id"])))
    ungraded = (
        judged.append_column("_order", pa.array(range(judged.num_rows), pa.int64()))
        .join(graded.select(["query_id", "doc_id"]), keys=["query_id", "doc_id"], join_type="left anti")
        .sort_by("_order")  # joins do not keep row order
        .drop_columns(["_order"])
    )
    negatives = ungraded.append_column("label", pa.repeat(pa.scalar(0, pa.int64()), ungraded.num_rows))
    judgments = pa.concat_tables([graded, negatives])
    return MsMarcoTables(judgments=with_text(judgments), pool=with_text(candidates))


def import_beir(folder: str | Path, split: str = "test") -> pa.Table:
    """The judgments of one split of a BEIR data set folder (``corpus.jsonl``, ``queries.jsonl``,
    ``qrels/<split>.tsv`` with header ``query-id TAB corpus-id TAB score``), in qrels order. A document without a
    ``title`` key gets title ""."""
    graded = _read_beir_qrels(io.join(folder, "qrels", f"{split}.tsv"))
    queries = _read_jsonl_texts(io.join(folder, "queries.jsonl"), _unique_ids([graded], "query_id"), ["text"])
    documents = _read_jsonl_texts(io.join(folder, "corpus.jsonl"), _unique_ids([graded], "doc_id"), ["title", "text"])
    return _attach_texts(graded, queries, documents)


def _unique_ids(tables: list[pa.Table], column: str) -> pa.Array:
    return pc.unique(pa.chunked_array([t[column] for t in tables], pa.string()).combine_chunks())


def _attach_texts(pairs: pa.Table, queries: pa.Table, documents: pa.Table) -> pa.Table:
    """``pairs`` (query_id, doc_id[, label]) with query, title and summary looked up by id, null where the id is
    unknown. ``queries`` is (id, text); ``documents`` is (id, text[, title]), and without a title column every
    title is ""."""

    def lookup(ids: pa.ChunkedArray, known: pa.Table, column: str) -> pa.Array:
        position = pc.index_in(ids, value_set=known["id"].combine_chunks())
        return known[column].combine_chunks().take(position)

    titled = "title" in documents.column_names
    columns = {
        "query_id": pairs["query_id"],
        "query": lookup(pairs["query_id"], queries, "text"),
        "doc_id": pairs["doc_id"],
        "title": lookup(pairs["doc_id"], documents, "title") if titled else pa.repeat("", pairs.num_rows),
        "summary": lookup(pairs["doc_id"], documents, "text"),
    }
    if "label" in pairs.column_names:
        columns["label"] = pairs["label"]
    return pa.table(columns)


def _read_tsv_texts(uri: str | Path, wanted: pa.Array) -> pa.Table:
    """(id, text) of the lines of an ``id TAB text`` file whose id is in ``wanted``, in file order."""
    kept: list[pa.Array] = []
    for lines in iter_line_batches(uri):
        # The id alone decides whether a line is kept; the text is split off only for the few lines that are.
        ids = pc.list_element(pc.split_pattern(lines, "\t", max_splits=1), 0)
        kept.append(lines.filter(pc.is_in(ids, value_set=wanted)))
    parts = pc.extract_regex(pa.chunked_array(kept, pa.string()), _ID_AND_TEXT)
    return pa.table({"id": pc.struct_field(parts, "id"), "text": pc.struct_field(parts, "text")})


def _read_jsonl_texts(uri: str | Path, wanted: pa.Array, fields: list[str]) -> pa.Table:
    """(id, *fields) of the JSON lines whose ``_id`` is in ``wanted``; a missing ``title`` is "", other fields null."""
    wanted_ids = set(wanted.to_pylist())
    rows: dict[str, list[str | None]] = {"id": [], **{name: [] for name in fields}}
    fs, path = io.resolve(uri)
    with fs.open_input_stream(path) as stream:
        for number, line in enumerate(stdio.TextIOWrapper(stream, encoding="utf-8"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc_id = str(record["_id"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{uri}: line {number} is not a JSON object with an _id: {err}") from err
            if doc_id in wanted_ids:
                rows["id"].append(doc_id)
                for name in fields:
                    rows[name].append(record.get(name, "" if name == "title" else None))
    return pa.table({name: pa.array(values, pa.string()) for name, values in rows.items()})


def _read_beir_qrels(uri: str | Path) -> pa.Table:
    """A BEIR qrels TSV as (query_id, doc_id, label:int64); the header must be there, or its first row would be lost."""
    fs, path = io.resolve(uri)
    with fs.open_input_stream(path) as stream:
        table = pcsv.read_csv(
            stream,
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types={"query-id": pa.string(), "corpus-id": pa.string(), "score": pa.int64()}
            ),
        )
    if table.column_names != _BEIR_QRELS_HEADER:
        raise ValueError(f"{uri}: header is {table.column_names}, expected {_BEIR_QRELS_HEADER}")
    return table.rename_columns(["query_id", "doc_id", "label"])
