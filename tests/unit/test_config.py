"""Strict YAML + dotted-override configs: exact values loaded, and errors that name the dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from disranker.config import ConfigError, load_config, to_dict
from disranker.evaluation.evaluate import EvaluateConfig


@dataclass
class Inner:
    lr: float = 0.1
    layers: int = 2
    kind: Literal["bert", "llama"] = "bert"

    def validate(self) -> None:
        if self.layers < 1:
            raise ConfigError("'model.layers' must be ≥ 1")


@dataclass
class Outer:
    name: str = "run"
    steps: int = 10
    shuffle: bool = True
    out: str | None = None
    sizes: list[int] = field(default_factory=list)
    model: Inner = field(default_factory=Inner)


def write_yaml(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_file_and_overrides_fill_a_nested_dataclass(tmp_path):
    path = write_yaml(tmp_path, "name: base\nsteps: 5\nmodel:\n  lr: 0.5\n  kind: llama\n")
    config = load_config(Outer, path, ["model.layers=4", "shuffle=false", "out=/tmp/x"])
    assert config == Outer(
        name="base", steps=5, shuffle=False, out="/tmp/x", sizes=[], model=Inner(lr=0.5, layers=4, kind="llama")
    )


def test_no_file_and_no_overrides_gives_the_defaults():
    assert load_config(Outer) == Outer()


def test_empty_yaml_file_gives_the_defaults(tmp_path):
    assert load_config(Outer, write_yaml(tmp_path, "# nothing set\n")) == Outer()


def test_yaml_top_level_that_is_not_a_mapping_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="the top level must be a mapping of keys, got list"):
        load_config(Outer, write_yaml(tmp_path, "- a\n- b\n"))


def test_unknown_top_level_key_names_it_and_lists_allowed_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, write_yaml(tmp_path, "stepz: 3\n"))
    assert str(err.value) == "unknown key 'stepz' in Outer; allowed keys: model, name, out, shuffle, sizes, steps"


def test_unknown_nested_key_names_the_dotted_key_and_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(Outer, None, ["model.dropout=0.1"])
    assert str(err.value) == "unknown key 'model.dropout' in Inner; allowed keys: kind, layers, lr"


def test_int_field_given_text_names_the_key():
    with pytest.raises(ConfigError) as err:
        load_config(Outer, None, ["model.layers=abc"])
    assert str(err.value) == "'model.layers' must be an integer, got 'abc'"


def test_int_field_given_a_fractional_number_is_an_error():
    with pytest.raises(ConfigError, match=r"'steps' must be an integer, got 2\.5"):
        load_config(Outer, None, ["steps=2.5"])


def test_int_field_given_a_whole_float_becomes_an_int():
    config = load_config(Outer, None, ["steps=3.0"])
    assert config.steps == 3
    assert type(config.steps) is int


def test_bool_field_given_quoted_yes_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, write_yaml(tmp_path, 'shuffle: "yes"\n'))
    assert str(err.value) == "'shuffle' must be true or false, got 'yes'"


def test_literal_violation_names_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError) as err:
        load_config(Outer, None, ["model.kind=gpt"])
    assert str(err.value) == "'model.kind' must be one of 'bert', 'llama', got 'gpt'"


def test_list_items_are_checked_with_their_index():
    with pytest.raises(ConfigError, match=r"'sizes\[1\]' must be an integer, got 'x'"):
        load_config(Outer, None, ["sizes=[1, x]"])


def test_override_value_3_is_an_int():
    config = load_config(Outer, None, ["steps=3"])
    assert config.steps == 3
    assert type(config.steps) is int


def test_override_value_in_brackets_is_a_list():
    assert load_config(Outer, None, ["sizes=[1,2]"]).sizes == [1, 2]


def test_override_number_into_a_text_field_becomes_text():
    assert load_config(Outer, None, ["name=2024"]).name == "2024"


def test_override_exponent_without_a_dot_into_a_float_field_is_a_number():
    # YAML 1.1 reads 3e-5 as text; a learning rate written that way is still a number.
    assert load_config(Outer, None, ["model.lr=3e-5"]).model.lr == 3e-5


def test_override_int_into_a_float_field_becomes_a_float():
    config = load_config(Outer, None, ["model.lr=1"])
    assert config.model.lr == 1.0
    assert type(config.model.lr) is float


def test_override_null_into_an_optional_field_is_none():
    assert load_config(Outer, None, ["out=/x", "out=null"]).out is None


def test_override_value_with_a_colon_stays_text():
    assert load_config(Outer, None, ["out=s3://bucket/run"]).out == "s3://bucket/run"


def test_later_override_wins():
    config = load_config(Outer, None, ["steps=1", "steps=2", "model.lr=0.3", "model.lr=0.4"])
    assert (config.steps, config.model.lr) == (2, 0.4)


def test_override_wins_over_the_yaml_file(tmp_path):
    config = load_config(Outer, write_yaml(tmp_path, "steps: 5\nmodel:\n  layers: 3\n"), ["model.layers=7"])
    assert (config.steps, config.model.layers) == (5, 7)


def test_override_below_a_scalar_from_the_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, write_yaml(tmp_path, "steps: 5\n"), ["steps.inner=1"])
    assert str(err.value) == "override 'steps.inner=1': 'steps' holds a value, not a section"


def test_override_below_a_scalar_field_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"'name' must be text, got \{'x': 1\}"):
        load_config(Outer, None, ["name.x=1"])


def test_override_into_a_section_whose_keys_are_all_commented_out(tmp_path):
    config = load_config(Outer, write_yaml(tmp_path, "model:\n  # lr: 0.5\n"), ["model.layers=5"])
    assert config.model == Inner(layers=5)


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="override 'steps' is not of the form key.sub=value"):
        load_config(Outer, None, ["steps"])


def test_section_given_a_scalar_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="'model' must be a mapping, got 3"):
        load_config(Outer, None, ["model=3"])


def test_validate_runs_on_a_nested_section():
    with pytest.raises(ConfigError, match="'model.layers' must be ≥ 1"):
        load_config(Outer, None, ["model.layers=0"])


def test_to_dict_gives_plain_nested_data():
    assert to_dict(Outer()) == {
        "name": "run",
        "steps": 10,
        "shuffle": True,
        "out": None,
        "sizes": [],
        "model": {"lr": 0.1, "layers": 2, "kind": "bert"},
    }


def test_evaluate_config_from_yaml_and_overrides(tmp_path):
    path = write_yaml(tmp_path, "judgments: j.parquet\nscores: s.parquet\nmrr_min_label: 4\n")
    config = load_config(EvaluateConfig, path, ["model=2024", "output_dir=out/eval"])
    assert config == EvaluateConfig(
        judgments="j.parquet", scores="s.parquet", output_dir="out/eval", model="2024", mrr_min_label=4
    )


def test_evaluate_config_without_judgments_is_an_error():
    with pytest.raises(ConfigError) as err:
        load_config(EvaluateConfig, None, ["scores=s.parquet"])
    assert str(err.value) == "'judgments' is required: the path of the judgments table"


def test_evaluate_config_without_scores_is_an_error():
    with pytest.raises(ConfigError, match="'scores' is required"):
        load_config(EvaluateConfig, None, ["judgments=j.parquet"])


def test_evaluate_config_mrr_min_label_outside_the_label_range_is_an_error():
    with pytest.raises(ConfigError, match="'mrr_min_label' must be within 0–4"):
        load_config(EvaluateConfig, None, ["judgments=j", "scores=s", "mrr_min_label=5"])


@dataclass
class Required:
    path: str
    n: int = 1


def test_missing_required_field_names_it():
    with pytest.raises(ConfigError, match="missing required key 'path' in Required"):
        load_config(Required, None, ["n=2"])
