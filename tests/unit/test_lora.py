"""LoRA for the teacher (models.lora) on the tiny teacher: what trains, packed rows unchanged, the merged export."""

from __future__ import annotations

import pytest
import torch

from disranker.config import ConfigError, load_config
from disranker.models.loading import load_teacher_lm, load_teacher_scorer
from disranker.models.lora import LoraSection, parameter_counts, save_merged, with_lora
from disranker.models.text import encode_teacher
from disranker.teacher import data
from disranker.teacher.backends import param_groups
from disranker.teacher.config import TeacherConfig, TrainingSection
from disranker.teacher.losses import rank_loss
from disranker.testing.tiny import build_tiny_teacher

SECTION = LoraSection(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
GROUPS = [
    data.QueryGroup("a small dog that barks", ["dog", "cat", "tree"], ["the dog barks", "a cat sat", ""], [4, 1, 0]),
    data.QueryGroup("grind with a sandblast", ["sandblast", "stone"], ["sandblast the wall", "a hard rock"], [3, 0]),
]


@pytest.fixture
def tiny(tmp_path):
    folder = build_tiny_teacher(tmp_path / "tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = load_teacher_scorer(folder)
    return model, tokenizer


def _nudge_adapters(model) -> None:
    """LoRA's B starts at zero (the update starts at zero): give it values so both factors get gradients."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)


def test_only_the_adapters_and_the_score_head_train(tiny):
    model, _ = tiny
    expected = (
        sum(
            SECTION.r * (m.in_features + m.out_features)
            for name, m in model.named_modules()
            if name.rsplit(".", 1)[-1] in SECTION.target_modules
        )
        + model.score.weight.numel()
    )
    wrapped = with_lora(model, SECTION, scorer=True)
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert parameter_counts(wrapped)["trainable_params"] == expected
    assert all("lora_" in n or ".score." in n for n in names) and any(".score." in n for n in names)


def test_packed_rows_give_the_plain_scores_and_gradients_with_adapters(tiny, packed_and_plain):
    model, tokenizer = tiny
    wrapped = with_lora(model, SECTION, scorer=True).train()
    _nudge_adapters(wrapped)
    (want_scores, want_grads), (got_scores, got_grads), _ = packed_and_plain(wrapped, tokenizer, GROUPS, 48, 512)
    torch.testing.assert_close(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    assert any("lora_A" in n for n in got_grads) and any(".score." in n for n in got_grads)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_training_lowers_the_loss_and_leaves_the_base_weights(tiny):
    model, tokenizer = tiny
    wrapped = with_lora(model, SECTION, scorer=True).train()
    base = {n: p.detach().clone() for n, p in wrapped.named_parameters() if not p.requires_grad}
    groups = param_groups(wrapped, TrainingSection(head_lr=1e-2))
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    batch = data.collate_groups(GROUPS, tokenizer, 48, 3)
    losses = []
    for _ in range(15):
        flat = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
        scores = data.scatter_scores(flat.float(), batch["slots"], tuple(batch["labels"].shape))
        loss = rank_loss("hinge", scores, batch["labels"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(p, base[n]) for n, p in wrapped.named_parameters() if n in base)
    assert len(groups) == 2 and all(p.requires_grad for g in groups for p in g["params"])


def test_the_merged_export_scores_as_the_adapted_model_and_loads_without_peft(tiny, tmp_path):
    model, tokenizer = tiny
    wrapped = with_lora(model, SECTION, scorer=True).eval()
    _nudge_adapters(wrapped)
    with torch.no_grad():
        wrapped.base_model.model.score.modules_to_save["default"].weight.add_(0.1)  # a trained head differs
    encoded = encode_teacher(tokenizer, ["a small dog", "a hard rock"], ["dog", "stone"], ["barks", "grey"])
    batch = dict(tokenizer.pad(encoded, return_tensors="pt"))
    with torch.no_grad():
        want = wrapped(**batch).logits[:, 0]
        before = {k: v.clone() for k, v in wrapped.state_dict().items()}
        save_merged(wrapped, tmp_path / "export")
        assert all(torch.equal(v, before[k]) for k, v in wrapped.state_dict().items())  # training keeps its adapters
        tokenizer.save_pretrained(tmp_path / "export")
        loaded, _ = load_teacher_scorer(tmp_path / "export")
        got = loaded.eval()(**batch).logits[:, 0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_causal_lm_gets_adapters_without_a_head_and_exports_merged(tmp_path):
    model, tokenizer = load_teacher_lm(build_tiny_teacher(tmp_path / "tiny"))
    wrapped = with_lora(model, SECTION, scorer=False).eval()
    assert all("lora_" in n for n, p in wrapped.named_parameters() if p.requires_grad)
    _nudge_adapters(wrapped)
    ids = torch.tensor([tokenizer("query: a small dog").input_ids])
    with torch.no_grad():
        want = wrapped(input_ids=ids).logits
        save_merged(wrapped, tmp_path / "export", state_dict=wrapped.state_dict())  # as ZeRO-3 hands it over
        tokenizer.save_pretrained(tmp_path / "export")
        loaded, _ = load_teacher_lm(tmp_path / "export")
        assert type(loaded) is type(model)
        torch.testing.assert_close(loaded.eval()(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.lora={r: 0}"], "'model.lora.r' must be ≥ 1"),
        (["model.lora={target_modules: []}"], "'model.lora.target_modules' is empty"),
    ],
)
def test_bad_lora_settings_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TeacherConfig, None, ["stage=cpt", "data.clicks=c.parquet", *overrides])
