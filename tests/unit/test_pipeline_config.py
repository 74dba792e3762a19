"""The main job's config: stage files + overrides, wiring the user may not override, and seeded query samples."""

from __future__ import annotations

import pyarrow as pa
import pytest

from disranker import lineage
from disranker.config import ConfigError, load_config
from disranker.data import io
from disranker.pipeline import SIZE_CONFIGS, PipelineConfig, config_for_size, samples
from disranker.pipeline.config import load_stage


def test_an_override_of_a_wired_key_is_an_error_naming_stage_and_key():
    with pytest.raises(ConfigError) as err:
        load_config(PipelineConfig, None, ['stages.label.overrides=["teacher.spec=/elsewhere"]'])
    assert "'stages.label.overrides': 'teacher.spec' is set by the pipeline" in str(err.value)


def test_a_nested_override_under_a_wired_section_is_refused_too():
    with pytest.raises(ConfigError, match="'stages.compare.overrides': 'models' is set by the pipeline"):
        load_config(PipelineConfig, None, ['stages.compare.overrides=["models=[]"]'])


def test_stage_overrides_apply_after_the_file_and_expand_output_dir(tmp_path):
    config = load_config(
        PipelineConfig,
        None,
        [
            f"output_dir={tmp_path}",
            'stages.teacher_cpt.overrides=["training.max_steps=7", "model.spec={output_dir}/m"]',
        ],
    )
    stage = load_stage(config, "teacher_cpt", {"stage": "cpt", "output_dir": str(tmp_path / "cpt")})
    assert stage.training.max_steps == 7 and stage.model.spec == f"{tmp_path}/m"
    assert stage.training.lr == 5.0e-5  # from jobs/configs/teacher_cpt.yaml
    assert stage.output_dir == str(tmp_path / "cpt")


def test_a_bad_key_in_a_stage_override_names_the_stage_and_its_file():
    config = load_config(PipelineConfig, None, ['stages.distill.overrides=["training.nope=1"]'])
    with pytest.raises(ConfigError) as err:
        load_stage(config, "distill", {})
    assert str(err.value).startswith("stages.distill (jobs/configs/distill.yaml): unknown key 'training.nope'")


def test_the_old_names_of_the_distill_entries_load_as_the_new_ones_with_a_warning():
    old = ['stages.student.overrides=["loss.name=point"]', "stages.student_labels_only.config=my.yaml"]
    with pytest.warns(FutureWarning) as warned:
        config = load_config(PipelineConfig, None, old)
    assert [str(w.message) for w in warned] == [
        "'stages.student' is deprecated: rename it 'stages.distill'",
        "'stages.student_labels_only' is deprecated: rename it 'stages.distill_labels_only'",
    ]
    assert config.stages.distill.overrides == ["loss.name=point"]
    assert config.stages.distill_labels_only.config == "my.yaml"


def test_an_old_and_a_new_name_together_are_an_error_and_other_unknown_stages_stay_errors():
    both = ['stages.student.overrides=["loss.name=point"]', 'stages.distill.overrides=["loss.name=margin"]']
    with pytest.raises(ConfigError, match="'stages.student' is the old name of 'stages.distill': give only"):
        load_config(PipelineConfig, None, both)
    with pytest.raises(ConfigError, match="unknown key 'stages.students' in StagesSection"):
        load_config(PipelineConfig, None, ["stages.students.config=x.yaml"])


def test_samples_must_be_positive_or_null():
    with pytest.raises(ConfigError, match="'samples.test_queries' must be ≥ 1 or null"):
        load_config(PipelineConfig, None, ["samples.test_queries=0"])


@pytest.mark.parametrize("size", sorted(SIZE_CONFIGS))
def test_each_size_names_a_pipeline_file_that_loads(size):
    config = load_config(PipelineConfig, config_for_size(size, None), [])
    assert config.corpus.size == {"tiny": "tiny", "demo": "small"}[size]


def test_size_and_config_together_or_an_unknown_size_are_errors():
    assert config_for_size(None, "my.yaml") == "my.yaml"
    with pytest.raises(ConfigError, match=r"not both \(--size tiny means --config jobs/configs/pipeline_smoke.yaml\)"):
        config_for_size("tiny", "my.yaml")
    for config in (None, "my.yaml"):  # an unknown size is named as such, with or without --config
        with pytest.raises(ConfigError, match="--size 'huge': expected one of tiny, demo"):
            config_for_size("huge", config)


def judgments(n_queries: int, docs: int) -> pa.Table:
    return pa.table(
        {
            "query_id": [f"q{q}" for q in range(n_queries) for _ in range(docs)],
            "doc_id": [f"d{d}" for _ in range(n_queries) for d in range(docs)],
            "label": [d % 5 for _ in range(n_queries) for d in range(docs)],
        }
    )


def test_sample_keeps_every_row_of_the_chosen_queries_in_input_order():
    table = judgments(10, 4)
    sample = samples.sample_queries(table, 3, seed=1)
    chosen = set(sample["query_id"].to_pylist())
    assert len(chosen) == 3 and sample.num_rows == 12
    assert sample["query_id"].to_pylist() == [q for q in table["query_id"].to_pylist() if q in chosen]
    assert samples.sample_queries(table, 3, seed=1).equals(sample)
    assert samples.sample_queries(table, None, seed=1) is table and samples.sample_queries(table, 99, 1) is table


def test_write_sample_records_its_corpus_parent_and_is_reused(tmp_path):
    corpus = tmp_path / "corpus"
    io.write_table(judgments(6, 2), corpus / "judgments" / "dev.parquet")
    corpus_record = lineage.write_lineage(str(corpus), "demo_corpus", {"size": "tiny"})
    out = str(tmp_path / "samples" / "dev")
    samples.write_sample(str(corpus / "judgments" / "dev.parquet"), out, 2, seed=0)
    record = lineage.read_lineage(out)
    assert record["parents"] == [corpus_record["id"]] and record["metrics"] == {"queries": 2, "rows": 4}
    assert samples.query_count(out) == 2 and io.read_table(out).num_rows == 4
    samples.write_sample(str(corpus / "judgments" / "dev.parquet"), out, 2, seed=0)
    assert lineage.read_lineage(out)["created_at"] == record["created_at"]


def test_write_union_joins_samples_of_two_contracts_under_the_pool_columns(tmp_path):
    corpus = tmp_path / "corpus"
    pool = judgments(3, 2).drop(["label"])
    io.write_table(pool, corpus / "pool.parquet")
    io.write_table(judgments(4, 2), corpus / "judgments" / "train.parquet")
    lineage.write_lineage(str(corpus), "demo_corpus", {"size": "tiny"})
    pool_dir, train_dir = str(tmp_path / "samples" / "pool"), str(tmp_path / "samples" / "train")
    samples.write_sample(str(corpus / "pool.parquet"), pool_dir, None, seed=0)
    samples.write_sample(str(corpus / "judgments" / "train.parquet"), train_dir, 2, seed=0)
    out = str(tmp_path / "samples" / "both")
    samples.write_union([pool_dir, train_dir], out, ["query_id", "doc_id"])
    table = io.read_table(out)
    assert table.column_names == ["query_id", "doc_id"] and table.num_rows == 6 + 4
    record = lineage.read_lineage(out)
    assert record["metrics"] == {"queries": 5, "rows": 10}
    assert record["parents"] == [lineage.read_lineage(pool_dir)["id"], lineage.read_lineage(train_dir)["id"]]
    samples.write_union([pool_dir, train_dir], out, ["query_id", "doc_id"])
    assert lineage.read_lineage(out)["created_at"] == record["created_at"]
