"""``disranker.json`` records: a stable id, completeness checks, round trips and file fingerprints."""

from __future__ import annotations

import re

from disranker import lineage

CONFIG = {"size": "tiny", "seed": 13, "nested": {"k": [1, 2]}}


def test_lineage_id_is_stable_for_the_same_inputs():
    first = lineage.lineage_id("demo_corpus", CONFIG, ["p1", "p2"], fingerprint="abc")
    again = lineage.lineage_id(
        "demo_corpus", {"nested": {"k": [1, 2]}, "seed": 13, "size": "tiny"}, ["p1", "p2"], "abc"
    )
    assert first == again
    assert re.fullmatch(r"[0-9a-f]{16}", first)


def test_lineage_id_ignores_parent_order():
    assert lineage.lineage_id("s", CONFIG, ["p1", "p2"]) == lineage.lineage_id("s", CONFIG, ["p2", "p1"])


def test_lineage_id_changes_with_stage_config_parents_and_fingerprint():
    base = lineage.lineage_id("s", CONFIG, ["p1"], "f")
    variants = {
        lineage.lineage_id("other", CONFIG, ["p1"], "f"),
        lineage.lineage_id("s", {**CONFIG, "seed": 14}, ["p1"], "f"),
        lineage.lineage_id("s", {**CONFIG, "nested": {"k": [2, 1]}}, ["p1"], "f"),
        lineage.lineage_id("s", CONFIG, ["p2"], "f"),
        lineage.lineage_id("s", CONFIG, ["p1", "p2"], "f"),
        lineage.lineage_id("s", CONFIG, ["p1"], "g"),
    }
    assert base not in variants
    assert len(variants) == 6


def test_write_then_read_round_trips_the_record(tmp_path):
    written = lineage.write_lineage(
        str(tmp_path / "stage"), "evaluate", CONFIG, parents=["p1"], fingerprint="f", metrics={"pnr": 1.5}
    )
    read = lineage.read_lineage(str(tmp_path / "stage"))
    assert read == written
    assert read["id"] == lineage.lineage_id("evaluate", CONFIG, ["p1"], "f")
    assert (read["stage"], read["parents"], read["config"], read["data_fingerprint"], read["metrics"]) == (
        "evaluate", ["p1"], CONFIG, "f", {"pnr": 1.5}
    )  # fmt: skip
    assert set(read) == {"id", "stage", "parents", "config", "data_fingerprint", "metrics", "git_commit", "created_at"}
    assert (tmp_path / "stage" / lineage.FILENAME).is_file()


def test_write_without_metrics_records_an_empty_mapping(tmp_path):
    assert lineage.write_lineage(str(tmp_path), "s", {})["metrics"] == {}


def test_read_lineage_of_a_folder_without_a_record_is_none(tmp_path):
    assert lineage.read_lineage(str(tmp_path)) is None


def test_is_complete_only_for_a_record_with_the_expected_id(tmp_path):
    folder = str(tmp_path / "out")
    expected = lineage.lineage_id("s", CONFIG)
    assert not lineage.is_complete(folder, expected)
    lineage.write_lineage(folder, "s", CONFIG)
    assert lineage.is_complete(folder, expected)
    assert not lineage.is_complete(folder, lineage.lineage_id("s", {**CONFIG, "seed": 0}))


def test_file_fingerprint_changes_with_content_not_with_argument_order(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    before = lineage.file_fingerprint([a, b])
    assert lineage.file_fingerprint([str(b), str(a)]) == before
    assert re.fullmatch(r"[0-9a-f]{16}", before)
    b.write_text("two!")
    assert lineage.file_fingerprint([a, b]) != before
    b.write_text("two")
    assert lineage.file_fingerprint([a, b]) == before


def test_file_fingerprint_includes_file_names(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    first, renamed = tmp_path / "x" / "data.noun", tmp_path / "y" / "data.verb"
    first.write_bytes(b"same bytes")
    renamed.write_bytes(b"same bytes")
    assert lineage.file_fingerprint([first]) != lineage.file_fingerprint([renamed])


def test_parent_ids_find_the_stage_above_a_table_but_only_a_models_own_record(tmp_path):
    stage = tmp_path / "label"
    lineage.write_lineage(str(stage), "label", {"a": 1})
    (stage / "labels").mkdir()
    table = stage / "labels" / "part-0.parquet"
    table.write_bytes(b"")
    (tmp_path / "model").mkdir()  # a model folder without a record, inside a folder with one
    lineage.write_lineage(str(tmp_path), "outer", {})
    labeling_id = lineage.read_lineage(str(stage))["id"]
    assert lineage.record_above(str(table))["stage"] == "label"  # two folders up
    assert lineage.record_above(str(tmp_path / "model"), levels=1) is None
    assert lineage.parent_ids(tables=[str(table), str(stage)], models=[str(tmp_path / "model"), "packaged:x"]) == [
        labeling_id
    ]


def test_a_record_written_before_a_stage_was_renamed_reads_as_the_new_name():
    assert lineage.stage_of({"stage": "labeling"}) == "label"  # issue 17: labeling → label, for one release
    assert lineage.stage_of({"stage": "label"}) == "label" and lineage.stage_of({"stage": "distill"}) == "distill"
    assert lineage.stage_of({}) is None
