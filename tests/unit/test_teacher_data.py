"""Teacher training inputs: CPT label masking, SFT query groups, the config's checks and DeepSpeed "auto" values."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch
from tests.fake_shard import FakeShard, groups_in_process

from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.models.loading import load_teacher_lm
from disranker.models.text import cpt_prompt
from disranker.teacher import data
from disranker.teacher.backends import fill_auto
from disranker.teacher.config import DeepSpeedSection, TeacherConfig, deepspeed_preset_text
from disranker.testing.tiny import build_tiny_teacher
from disranker.training.groups import Groups, to_group_rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_teacher_lm(build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny"))


def judgments(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.table(
        {
            "query_id": [q for q, _, _ in rows],
            "query": [f"question {q}" for q, _, _ in rows],
            "doc_id": [d for _, d, _ in rows],
            "title": [f"title {d}" for _, d, _ in rows],
            "summary": [f"summary of {d}" for _, d, _ in rows],
            "label": pa.array([label for _, _, label in rows], pa.int8()),
        }
    )


def test_cpt_examples_put_loss_on_the_target_only(tiny):
    model, tokenizer = tiny
    clicks = to_group_rows(judgments([("q1", "d1", 4), ("q2", "d2", 4)]).drop(["label"]), "clicks", None)
    examples = list(data.StreamedClicks(FakeShard(clicks), tokenizer, 64, 2, seed=0, n_clicks=2).examples(0))
    first = next(e for e in examples if tokenizer.decode(e["input_ids"]).startswith(cpt_prompt("question q1")))
    prompt_len = len(tokenizer(cpt_prompt("question q1"))["input_ids"])
    assert first["labels"][:prompt_len] == [-100] * prompt_len
    assert first["labels"][prompt_len:] == first["input_ids"][prompt_len:]
    assert first["labels"][-1] == tokenizer.eos_token_id

    batch = data.collate_cpt(examples, tokenizer.pad_token_id)
    width = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    n_target = sum(len(e["input_ids"]) for e in examples) - 2 * prompt_len
    assert int((batch["labels"] != -100).sum()) == n_target  # padding and prompts carry no loss
    assert batch["attention_mask"].sum().item() == sum(len(e["input_ids"]) for e in examples)
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_query_groups_mix_labels_and_skip_single_label_queries():
    rows = [("q1", f"a{i}", 0) for i in range(6)] + [("q1", "a-pos", 4), ("q1", "a-mid", 2)]
    rows += [("q2", "b1", 1), ("q2", "b2", 1)]  # one label only: no ordered pair
    groups, stats = data.query_groups(judgments(rows), group_size=4, seed=0)
    assert (stats.queries, stats.groups) == (2, 1)
    (group,) = groups
    assert sorted(group.labels) == [0, 0, 2, 4]  # round-robin over labels takes each label before repeating one
    assert group.query == "question q1"


def group_rows(rows: list[tuple[str, str, int]]) -> pa.Table:
    """``judgments(rows)`` as the SFT group table the workers stream (``training.groups``)."""
    return to_group_rows(judgments(rows), "judgments", "label")


SPREAD = [(f"q{q}", f"d{d}", d % 3) for q in range(6) for d in range(5)] + [("q6", "e1", 1), ("q6", "e2", 1)]


def test_streamed_label_groups_replay_an_epoch_and_draw_new_negatives_the_next():
    stream = data.StreamedLabelGroups(FakeShard(group_rows(SPREAD)), group_size=3, seed=0, shuffle_buffer=4)
    epoch0 = [(g.query, g.titles) for g in stream.groups(0)]
    assert len(epoch0) == 6  # q6 has one label only: no group
    assert epoch0 == [(g.query, g.titles) for g in stream.groups(0)]  # a resumed epoch sees the same order
    assert epoch0 != [(g.query, g.titles) for g in stream.groups(1)]
    for group in stream.groups(0):
        assert sorted(group.labels) == [0, 1, 2]  # one doc of each label before any label repeats


def test_rankable_queries_count_each_workers_queries_with_two_labels(tmp_path):
    table = group_rows(SPREAD)
    io.write_table(table, tmp_path / "groups" / "part-00000.parquet")
    groups = Groups(uri=str(tmp_path / "groups"), target_column="label", queries=7, rows_in=32, rows=32)
    keys = dict(zip(table["query_id"].to_pylist(), table["key"].to_pylist(), strict=True))
    expected = [sum(keys[f"q{q}"] % 2 == rank for q in range(6)) for rank in range(2)]
    assert data.rankable_queries(groups, 2, groups.key_limits(2)) == expected and sum(expected) == 6
    limits = groups.key_limits(2, max_queries=2)  # each worker's one query of smallest key (q6's has no pair)
    kept = [rank for rank in range(2) if min(k for k in keys.values() if k % 2 == rank) != keys["q6"]]
    assert sum(data.rankable_queries(groups, 2, limits)) == len(kept)


def test_collate_groups_scatters_scores_into_masked_slots(tiny):
    _, tokenizer = tiny
    rows = [("q1", "d1", 4), ("q1", "d2", 0), ("q1", "d3", 1), ("q2", "e1", 3), ("q2", "e2", 0)]
    groups, _ = data.query_groups(judgments(rows), group_size=3, seed=0)
    batch = data.collate_groups(groups, tokenizer, max_length=64, group_size=3)
    assert batch["input_ids"].shape[0] == 5
    assert batch["mask"].tolist() == [[True, True, True], [True, True, False]]
    scores = data.scatter_scores(torch.arange(1.0, 6.0), batch["slots"], (2, 3))
    assert scores.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]
    lengths = batch["attention_mask"].sum(dim=1) - 1
    assert (batch["input_ids"][torch.arange(5), lengths] == tokenizer.eos_token_id).all()  # EOS is the last real token


def test_streamed_clicks_give_each_click_once_length_sorted_and_replay_an_epoch(tiny):
    _, tokenizer = tiny
    rows = [(f"q{q}", f"d{d}" * (1 + d), 0) for q in range(5) for d in range(4)]  # titles of growing length
    clicks = FakeShard(to_group_rows(judgments(rows).drop(["label"]), "clicks", None))
    stream = data.StreamedClicks(clicks, tokenizer, 96, batch_size=4, seed=1, n_clicks=18)
    epoch0 = [e["input_ids"] for e in stream.examples(0)]
    assert len(epoch0) == 18 and len({tuple(ids) for ids in epoch0}) == 18  # 18 of the 20 clicks, each once
    assert epoch0 == [e["input_ids"] for e in stream.examples(0)]  # a resumed epoch sees the same order
    assert epoch0 != [e["input_ids"] for e in stream.examples(1)]
    lengths = [len(ids) for ids in epoch0]  # one window of 50 batches: sorted by length, then whole batches shuffled
    batches = [lengths[i : i + 4] for i in range(0, 16, 4)]
    assert all(max(a) <= min(b) or max(b) <= min(a) for a in batches for b in batches if a is not b)


def test_config_checks_inputs_precision_packing_and_failure_hook():
    with pytest.raises(ConfigError, match="'data.clicks' is required for stage cpt"):
        load_config(TeacherConfig, None, ["stage=cpt"])
    with pytest.raises(ConfigError, match="'data.train' is required for stage sft"):
        load_config(TeacherConfig, None, ["stage=sft"])
    with pytest.raises(ConfigError, match="'training.precision' must be one of 'fp32', 'bf16', 'auto', got 'fp16'"):
        load_config(TeacherConfig, None, ["data.clicks=c.parquet", "training.precision=fp16"])
    with pytest.raises(ConfigError, match="'training.pack_row_tokens' must be ≥ 'training.max_length'"):
        load_config(TeacherConfig, None, ["data.clicks=c", "training.max_length=256", "training.pack_row_tokens=100"])
    with pytest.raises(ConfigError, match="fail_once_at_step"):  # a test hook is not a config key
        load_config(TeacherConfig, None, ["data.clicks=c", "fail_once_at_step=3"])
    with pytest.raises(ConfigError, match="rank_loss"):
        load_config(TeacherConfig, None, ["data.clicks=c", "training.rank_loss=lambdarank"])


@pytest.mark.parametrize("preset", ["zero1", "zero2", "zero3"])
def test_deepspeed_presets_fill_every_auto_value(tiny, preset):
    model, _ = tiny
    config = load_config(
        TeacherConfig, None, ["data.clicks=c", "training.batch_size=4", "training.grad_accumulation=2"]
    )
    filled = fill_auto(json.loads(deepspeed_preset_text(DeepSpeedSection(preset=preset))), config, model, 2)
    assert "auto" not in json.dumps(filled)
    assert (filled["train_batch_size"], filled["train_micro_batch_size_per_gpu"]) == (16, 4)
    assert filled["zero_optimization"]["stage"] == int(preset[-1])
    assert filled["bf16"]["enabled"] is False


@pytest.mark.parametrize("name", ["teacher_cpt", "teacher_cpt_smoke", "teacher_sft", "teacher_sft_smoke"])
def test_shipped_teacher_configs_load(name):
    config = load_config(TeacherConfig, f"jobs/configs/{name}.yaml")
    assert config.stage == name.split("_")[1]
    assert config.deepspeed is None and config.scaling.num_workers == 2


def test_train_teacher_job_rejects_unknown_override():
    import jobs.train_teacher

    with pytest.raises(ConfigError, match="unknown key 'training.nope'"):
        jobs.train_teacher.main(["--config", "jobs/configs/teacher_cpt_smoke.yaml", "training.nope=1"])


def test_head_lr_puts_the_score_layer_in_its_own_group(tmp_path):
    from disranker.models.loading import load_teacher_scorer
    from disranker.teacher.backends import param_groups

    model, _ = load_teacher_scorer(build_tiny_teacher(tmp_path / "tiny"))
    config = load_config(TeacherConfig, None, ["stage=sft", "data.train=t", "data.dev=d", "training.head_lr=1e-3"])
    body, head = param_groups(model, config.training)
    assert head["lr"] == 1e-3 and [id(p) for p in head["params"]] == [id(p) for p in model.score.parameters()]
    assert len(body["params"]) + len(head["params"]) == len(list(model.parameters())) and "lr" not in body
    optimizer = torch.optim.AdamW([body, head], lr=2e-5)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-5, 1e-3]
    config = load_config(TeacherConfig, None, ["stage=sft", "data.train=t", "data.dev=d"])
    assert len(param_groups(model, config.training)) == 1
    with pytest.raises(ConfigError, match="'training.head_lr' must be > 0"):
        load_config(TeacherConfig, None, ["data.clicks=c", "training.head_lr=0"])


def test_bad_training_rows_are_set_aside_with_reasons_and_counted(tmp_path):
    """Before: a null label raised TypeError mid-run and a null query trained as the text "None"."""
    good = judgments([("q1", "d1", 4), ("q1", "d2", 0), ("q2", "d3", 4), ("q2", "d4", 1)])
    rows = good.to_pylist()
    rows[1]["label"], rows[2]["query"] = None, None
    bad = pa.Table.from_pylist(rows, schema=good.schema)
    io.write_table(bad, tmp_path / "train.parquet")
    io.write_table(judgments([("q9", "d9", 4), ("q9", "d8", 0)]), tmp_path / "dev.parquet")
    config = load_config(TeacherConfig, overrides=[
        "stage=sft", f"data.train={tmp_path / 'train.parquet'}", f"data.dev={tmp_path / 'dev.parquet'}",
        f"output_dir={tmp_path / 'out'}",
    ])  # fmt: skip
    grouped = groups_in_process(str(tmp_path / "train.parquet"), "judgments", "label", str(tmp_path / "groups"))
    counts = data.write_rejections(config, grouped)
    assert counts == {"train": {"in": 4, "valid": 2, "rejected": 2}, "dev": {"in": 2, "valid": 2, "rejected": 0}}
    rejected = io.read_table(tmp_path / "out" / "rejected" / "train.parquet")
    assert rejected["reason"].to_pylist() == ["label: missing (null)", "query: missing (null)"]
    assert rejected["row"].to_pylist() == [1, 2]  # numbered as in the input
    trained = io.read_table(tmp_path / "groups")  # what the workers stream: the valid rows only
    assert trained["titles"].to_pylist() == [["title d1"], ["title d4"]]

    io.write_table(pa.Table.from_pylist(rows[1:3], schema=bad.schema), tmp_path / "dev.parquet")
    with pytest.raises(ValueError, match=r"data.dev=.*dev.parquet: no row keeps the judgments contract"):
        data.write_rejections(config, grouped)
