"""The tiny WordNet demo corpus, built once from the real WordNet files and checked against DESIGN.md's promises."""

from __future__ import annotations

import dataclasses
import re

import pyarrow.compute as pc
import pytest

from disranker.data import demo, io, schemas
from disranker.data.validate import validate_table
from disranker.data.wordnet import read_synsets

SIZE = demo.SIZES["tiny"]
SPLIT_QUERIES = {"train": SIZE.train, "dev": SIZE.dev, "test": SIZE.test, "pool": SIZE.pool}


@pytest.fixture(scope="module")
def synsets(wordnet_dir):
    return read_synsets(wordnet_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, wordnet_dir):
    config = demo.DemoCorpusConfig(
        output_dir=str(tmp_path_factory.mktemp("corpus")), size="tiny", wordnet_dir=str(wordnet_dir)
    )
    demo.run(config)
    tables = {
        split: io.read_table(f"{config.output_dir}/judgments/{split}.parquet") for split in ("train", "dev", "test")
    }
    tables["pool"] = io.read_table(f"{config.output_dir}/pool.parquet")
    tables["clicks"] = io.read_table(f"{config.output_dir}/clicks.parquet")
    return config, tables, io.read_json(f"{config.output_dir}/stats.json")


def test_tables_keep_their_contracts_and_sizes(corpus):
    _, tables, stats = corpus
    for split, n_queries in SPLIT_QUERIES.items():
        table = tables[split]
        contract = "pool" if split == "pool" else "judgments"
        assert table.schema.equals(schemas.contract(contract))
        assert validate_table(table, contract).counts == {"in": n_queries * 8, "valid": n_queries * 8, "rejected": 0}
        assert stats["splits"][split]["queries"] == n_queries
        assert stats["splits"][split]["pairs"] == n_queries * SIZE.candidates
    assert tables["clicks"].num_rows == SIZE.pool


def test_every_query_has_one_exact_answer_and_a_graded_mix(corpus):
    _, tables, stats = corpus
    for split in ("train", "dev", "test"):
        rows = tables[split].to_pylist()
        answers = [r for r in rows if r["label"] == 4]
        assert len(answers) == SPLIT_QUERIES[split]
        assert len({r["query_id"] for r in answers}) == SPLIT_QUERIES[split]
        histogram = stats["splits"][split]["labels"]
        assert all(histogram[str(grade)] > 0 for grade in range(5)), histogram
    sources = stats["splits"]["pool"]["sources"]
    for source in (*demo.NEGATIVE_SOURCES, "self", "hypernym", "sibling"):
        assert source in sources, sources
    assert set(sources["random"]) == {"0"} and set(sources["bm25_title"]) == {"0"}


def test_splits_share_no_query_synset_and_clicks_are_pool_answers(corpus):
    _, tables, _ = corpus
    answers = {
        split: set(pc.filter(tables[split]["doc_id"], pc.equal(tables[split]["label"], 4)).to_pylist())
        for split in ("train", "dev", "test")
    }
    answers["pool"] = set(tables["clicks"]["doc_id"].to_pylist())
    splits = list(answers)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not answers[a] & answers[b], (a, b)
    queries = [set(tables[s]["query"].to_pylist()) for s in ("train", "dev", "test", "clicks")]
    assert sum(map(len, queries)) == len(set().union(*queries)), "a gloss is the query of two splits"


def test_queries_never_contain_their_answers_lemmas(corpus):
    _, tables, _ = corpus
    for row in tables["test"].to_pylist() + tables["clicks"].to_pylist():
        if row.get("label", 4) != 4:
            continue
        for lemma in row["title"].split(", "):
            assert not re.search(rf"\b{re.escape(lemma)}\b", row["query"], re.IGNORECASE), (lemma, row["query"])


def test_build_is_deterministic_and_a_rerun_is_skipped(corpus, synsets, tmp_path):
    config, tables, _ = corpus
    again = dataclasses.replace(config, output_dir=str(tmp_path / "again"))
    demo.build_demo_corpus(again, synsets)
    assert io.read_table(tmp_path / "again/judgments/test.parquet").equals(tables["test"])
    other_seed = dataclasses.replace(again, output_dir=str(tmp_path / "seed7"), seed=7)
    demo.build_demo_corpus(other_seed, synsets)
    assert not io.read_table(tmp_path / "seed7/judgments/test.parquet").equals(tables["test"])

    before = io.read_json(f"{config.output_dir}/disranker.json")["created_at"]
    demo.run(config)  # same config and WordNet: nothing is rebuilt
    assert io.read_json(f"{config.output_dir}/disranker.json")["created_at"] == before


def test_lineage_records_config_and_wordnet_fingerprint(corpus):
    config, _, stats = corpus
    record = io.read_json(f"{config.output_dir}/disranker.json")
    assert record["stage"] == "demo_corpus"
    assert record["config"]["size"] == "tiny"
    wordnet_hash, version = record["data_fingerprint"].split("-v")
    assert len(wordnet_hash) == 16 and version == str(demo.BUILDER_VERSION)
    assert record["metrics"]["splits"] == stats["splits"]
