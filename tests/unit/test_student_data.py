"""The distillation loader: query rows grouped from a table (validated per query, keyed stably), and streamed as
training groups (every document once per epoch, one query per group, an order that is a function of seed and epoch,
a resumed epoch skipping exactly the groups done)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from tests.fake_shard import FakeShard

from disranker.data import io, schemas
from disranker.data.schemas import stable_keys
from disranker.data.validate import rejected_table
from disranker.student.data import StreamedGroups, training_table
from disranker.training.groups import Groups, group_schema, to_group_rows


def query_rows(sizes: list[int]) -> pa.Table:
    """One group row per query, query ``q<i>`` holding ``sizes[i]`` documents ``q<i>-d<j>`` with target ``j``."""
    rows = [
        {
            "query_id": f"q{q}",
            "key": int(stable_keys([f"q{q}"])[0]),
            "n_docs": n,
            "query": f"query {q}",
            "titles": [f"q{q}-d{j}" for j in range(n)],
            "summaries": ["s"] * n,
            "teacher_score": [float(j) for j in range(n)],
        }
        for q, n in enumerate(sizes)
    ]
    return pa.Table.from_pylist(rows, schema=group_schema("teacher_score"))


def streamed(sizes, group_size=4, groups_per_batch=2, steps=None, seed=3, buffer=4) -> StreamedGroups:
    table = query_rows(sizes)
    return StreamedGroups(FakeShard(table), "teacher_score", group_size, groups_per_batch, steps or 1, seed, buffer)


def test_each_document_once_per_epoch_and_groups_hold_one_query():
    data = streamed([5, 3, 8, 1])
    groups = list(data.groups(0))
    assert len(groups) == 2 + 1 + 2 + 1  # ceil(5/4) + ceil(3/4) + ceil(8/4) + ceil(1/4)
    titles = [t for g in groups for t in g.titles]
    assert sorted(titles) == sorted(f"q{q}-d{j}" for q, n in enumerate([5, 3, 8, 1]) for j in range(n))
    for group in groups:
        assert {t.split("-")[0] for t in group.titles} == {group.id.split("#")[0]} and len(group.titles) <= 4
        assert group.targets == [float(t.split("-d")[1]) for t in group.titles]  # targets travel with their docs


def test_order_is_a_function_of_seed_and_epoch():
    data = streamed([6] * 10)
    ids = lambda epoch: [(g.id, tuple(g.titles)) for g in data.groups(epoch)]  # noqa: E731
    assert ids(1) == ids(1)
    assert ids(0) != ids(1)
    assert [g.id for g in streamed([6] * 10, seed=4).groups(0)] != [g.id for g in data.groups(0)]


def test_a_resumed_epoch_continues_with_the_next_groups():
    data = streamed([4] * 12, groups_per_batch=2, steps=6)
    whole = [g.id for g in data.groups(2)]
    resumed = StreamedGroups(data.shard, "teacher_score", 4, 2, 6, seed=3, shuffle_buffer=4)
    batches = list(resumed.batches(2, _Tokenizer(), max_length=16, start_step=4))
    assert [i for b in batches for i in b.ids] == whole[8:12]


class _Tokenizer:
    """Enough of a tokenizer for ``encode_student``: four tokens per text pair."""

    def __call__(self, first, second, **kwargs):
        import torch

        n = len(first)
        return {"input_ids": torch.ones(n, 4, dtype=torch.long), "attention_mask": torch.ones(n, 4, dtype=torch.long)}


def test_batches_mask_padding_and_run_out_loudly():
    data = streamed([5, 3], groups_per_batch=3, steps=1)
    (batch,) = list(data.batches(0, _Tokenizer(), max_length=16))
    assert batch.mask.sum().item() == 8 and batch.mask.shape == (3, 4)
    assert batch.encoded["input_ids"].shape[0] == 8  # only the real documents are encoded
    with pytest.raises(ValueError, match="ran out"):
        list(streamed([5, 3], groups_per_batch=3, steps=2).batches(0, _Tokenizer(), max_length=16))


def test_group_rows_validate_each_query_and_order_its_documents():
    rows = labels_rows(["a", "a", "a"], doc_ids=["d2", "d1", "d1"])  # a duplicate document
    grouped = to_group_rows(rows, "labels", "teacher_score")
    assert grouped.num_rows == 1
    row = grouped.to_pylist()[0]
    assert list(row) == group_schema("teacher_score").names and row["key"] == int(stable_keys(["a"])[0])
    assert row["titles"] == ["t1", "t2"] and row["teacher_score"] == [1.0, 0.0]  # by doc_id; the repeat dropped
    assert row["n_docs"] == 2
    # blake2b, not hash(): the same keys in every process and run, so every worker picks the same share
    assert stable_keys(["a", "b"]).tolist() == [1702698405120146464, 4226560797588928834]
    nothing = labels_rows(["c"], doc_ids=["x"]).set_column(1, "query", pa.array([""]))
    assert to_group_rows(nothing, "labels", "teacher_score").num_rows == 0  # no valid row: no group


def labels_rows(query_ids: list[str], doc_ids: list[str] | None = None) -> pa.Table:
    n = len(query_ids)
    doc_ids = doc_ids or [f"d{i}" for i in range(n)]
    return pa.table(
        {
            "query_id": query_ids,
            "query": ["q"] * n,
            "doc_id": doc_ids,
            "title": [f"t{d[1:]}" for d in doc_ids],
            "summary": ["s"] * n,
            "teacher_score": pa.array([float(i) for i in range(n)], pa.float32()),
            "teacher": ["sft:abc"] * n,
        },
        schema=schemas.LABELS,
    )


def test_the_share_of_each_worker_is_planned_from_keys_and_document_counts(tmp_path):
    sizes = [20, 3, 17, 5, 16, 1]
    table = query_rows(sizes)
    planned = table.drop_columns(["titles", "summaries"])  # planning reads keys and counts, never the documents
    io.write_table(planned, str(tmp_path / "groups" / "part-0.parquet"))
    groups = Groups(uri=str(tmp_path / "groups"), target_column="teacher_score", queries=6, rows_in=62, rows=62)
    keys = table["key"].to_pylist()
    share = groups.share(world_size=2, group_size=16, key_limits=groups.key_limits(2))
    want = [sum(-(-n // 16) for n, k in zip(sizes, keys, strict=True) if k % 2 == rank) for rank in (0, 1)]
    assert share.groups == want and sum(want) == 8 and (share.queries, share.rows) == (6, 62)
    limits = groups.key_limits(2, max_queries=3)  # ⌈3 / 2⌉ = 2 queries per worker: its two smallest keys
    kept = [n for n, k in zip(sizes, keys, strict=True) if k in sorted(x for x in keys if x % 2 == k % 2)[:2]]
    capped = groups.share(2, 16, limits)
    assert capped.queries == 4 and capped.rows == sum(kept)
    by_docs = groups.share(2, 16, groups.key_limits(2, max_rows=10))  # each worker until it holds ≥ 5 documents
    assert all(rows >= 1 for rows in by_docs.groups) and by_docs.queries < 6


def test_a_labeling_output_folder_is_read_without_its_rejected_shards(tmp_path):
    io.write_table(labels_rows(["a", "a", "b"]), tmp_path / "labels" / "part-0.parquet")
    bad = pa.table({"query_id": ["c"], "doc_id": ["x"]})
    io.write_table(
        rejected_table(bad, "labels", {0: "missing field 'query'"}), tmp_path / "rejected" / "part-0.parquet"
    )
    assert training_table(str(tmp_path), "labels") == str(tmp_path / "labels")
    assert training_table(str(tmp_path), "judgments") == str(tmp_path)


def test_distillation_refuses_the_folder_of_a_labeling_run_that_did_not_finish(tmp_path):
    from disranker import lineage
    from disranker.student.data import check_labeling_finished

    io.write_table(labels_rows(["a", "a", "b"]), tmp_path / "labels" / "part-0.parquet")
    io.write_json({"pool": {}}, tmp_path / "plan.json")  # labeling started here and stopped before its record
    for uri in (str(tmp_path), str(tmp_path / "labels"), str(tmp_path / "labels" / "part-0.parquet")):
        with pytest.raises(ValueError, match=r"the labeling run writing .* has not finished"):
            check_labeling_finished(uri)
    counts = {"rows_in": 4, "labeled": 3, "rejected": 1}
    lineage.write_lineage(str(tmp_path), "distill", {}, metrics=counts)
    with pytest.raises(ValueError, match="has not finished"):  # another stage's record is no labeling run's
        check_labeling_finished(str(tmp_path))
    for stage in ("label", "labeling"):  # a record written before the rename to `label` is accepted too
        lineage.write_lineage(str(tmp_path), stage, {}, metrics=counts)
        check_labeling_finished(str(tmp_path))  # finished: accepted
    io.write_table(labels_rows(["a"]), tmp_path / "plain" / "labels.parquet")
    check_labeling_finished(str(tmp_path / "plain" / "labels.parquet"))  # a table no labeling run wrote
