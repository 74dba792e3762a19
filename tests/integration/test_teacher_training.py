"""Teacher CPT and SFT on a local Ray with 2 CPU workers (gloo DDP), a tiny Llama and the tiny demo corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.evaluation import metrics
from disranker.faults import FaultInjection
from disranker.models.loading import load_teacher_lm, load_teacher_scorer, score_pairs_teacher
from disranker.models.text import pair_texts
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig
from disranker.testing import smoke

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, wordnet_dir):
    """The smoke inputs (corpus/, tiny_teacher/) and every run's output, in one folder."""
    folder = tmp_path_factory.mktemp("teacher")
    smoke.build_smoke_inputs(folder, wordnet_dir=str(wordnet_dir))
    return folder


def smoke_paths(workdir) -> dict[str, str]:
    return {name: str(workdir / name) for name in ("corpus", "tiny_teacher")}


def smoke_config(stage: str, workdir, *overrides: str) -> TeacherConfig:
    return load_config(
        TeacherConfig,
        f"jobs/configs/teacher_{stage}_smoke.yaml",
        [f"output_dir={workdir / stage}", *smoke.teacher_overrides(smoke_paths(workdir)), *overrides],
    )


def test_cpt_loss_falls_and_a_killed_run_resumes_from_its_checkpoint(ray_start_2_cpus, workdir):
    # 8 clicks, 4 per worker, batch 4: every step (and epoch) sees the same fixed batch, so the loss must fall.
    # Worker 0 raises after step 6; Ray Train restarts both workers from the latest checkpoint, epoch 5's end.
    config = smoke_config(
        "cpt", workdir, "data.max_examples=8", "training.epochs=10", "run.checkpoint_every_steps=4",
        "run.max_failures=1",
    )  # fmt: skip
    out = train.run(config, FaultInjection(after_step=6))

    record = lineage.read_lineage(out)
    final = record["metrics"]
    losses = [point["loss"] for point in final["loss_curve"]]
    assert final["resumed_from_steps"] == [5]
    assert final["step"] == 10 and [p["step"] for p in final["loss_curve"]] == list(range(1, 11))  # went on from 5
    assert final["last_loss"] < final["first_loss"] - 0.3
    assert np.all(np.diff(losses) < 0)
    assert record["stage"] == "teacher_cpt" and len(record["parents"]) == 1  # the demo corpus

    trained, _ = load_teacher_lm(out)
    start, _ = load_teacher_lm(workdir / "tiny_teacher")
    assert io.exists(f"{out}/model.safetensors")
    changed = [k for k, v in trained.state_dict().items() if not np.allclose(v, start.state_dict()[k])]
    assert changed  # the export holds the trained weights
    assert train.run(config) == out and lineage.read_lineage(out)["created_at"] == record["created_at"]  # skipped


def test_sft_loss_falls_and_dev_pnr_beats_the_untrained_head(ray_start_2_cpus, workdir):
    config = smoke_config("sft", workdir, "training.epochs=4", "run.checkpoint_every_steps=100")
    out = train.run(config)

    final = lineage.read_lineage(out)["metrics"]
    losses = [point["loss"] for point in final["loss_curve"]]
    # the 60 train queries split by key over 2 workers; each runs the smaller share: ⌈26 / 4 groups per batch⌉
    assert final["examples_per_worker"] == [34, 26] and final["steps_per_epoch"] == 7
    assert len(losses) == 4 * final["steps_per_epoch"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert [h["epoch"] for h in final["dev"]] == [0, 1, 2, 3]
    assert final["best"]["ndcg@10"] == max(h["ndcg@10"] for h in final["dev"])

    dev = io.read_table(workdir / "corpus" / "judgments" / "dev.parquet")
    qids, labels = np.asarray(dev["query_id"].to_pylist(), dtype=object), dev["label"].to_numpy()

    def dev_pnr(spec, seed: int | None = None) -> float:
        if seed is not None:  # the fresh score head the run started from (it seeds before loading)
            torch.manual_seed(seed)
        model, tokenizer = load_teacher_scorer(spec)
        scores = score_pairs_teacher(
            model,
            tokenizer,
            *pair_texts(dev),
            max_length=config.training.max_length,
        )
        return metrics.pnr(qids, labels, scores)

    trained_pnr = dev_pnr(out)
    assert trained_pnr == pytest.approx(final["best"]["pnr"], rel=1e-4)  # the export is the best epoch's model
    assert trained_pnr > 1.0  # more concordant than discordant pairs: better than a random order
    assert trained_pnr > dev_pnr(workdir / "tiny_teacher", seed=config.training.seed)
    assert "score.weight" in load_file(f"{out}/model.safetensors")


def test_sft_killed_mid_epoch_or_in_its_dev_pass_ends_with_the_uninterrupted_weights(ray_start_2_cpus, workdir):
    # 7 steps per epoch, a checkpoint every 4: both failures resume from step 4 (the step-7 checkpoint follows the dev
    # pass, so a failure inside that pass loses it too).
    faults = {"uninterrupted": None, "mid_epoch": FaultInjection(after_step=6),
              "dev_pass": FaultInjection(after_step=7, in_dev_pass=True)}  # fmt: skip
    finals, weights = {}, {}
    for name, fault in faults.items():
        config = smoke_config("sft", workdir, f"output_dir={workdir / name}", "training.epochs=2",
                              "run.checkpoint_every_steps=4", "run.max_failures=1")  # fmt: skip
        out = train.run(config, fault)
        finals[name] = lineage.read_lineage(out)["metrics"]
        weights[name] = load_file(f"{out}/model.safetensors")
    assert finals["uninterrupted"]["resumed_from_steps"] == []
    assert finals["mid_epoch"]["resumed_from_steps"] == finals["dev_pass"]["resumed_from_steps"] == [4]
    for name in ("mid_epoch", "dev_pass"):
        assert finals[name]["step"] == 14 and [d["epoch"] for d in finals[name]["dev"]] == [0, 1]
        assert finals[name]["best"] == finals["uninterrupted"]["best"]
        for key, value in weights["uninterrupted"].items():
            np.testing.assert_allclose(weights[name][key].numpy(), value.numpy(), atol=1e-6, err_msg=key)


def test_lora_sft_trains_adapters_and_exports_a_merged_scorer(ray_start_2_cpus, workdir):
    # Two gloo workers, adapters on the attention projections, the score head in full, lr high enough for 3 epochs.
    config = smoke_config(
        "sft", workdir, "training.epochs=3", "training.lr=5e-3", "run.checkpoint_every_steps=100",
        f"output_dir={workdir / 'sft_lora'}", "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}",
    )  # fmt: skip
    out = train.run(config)

    final = lineage.read_lineage(out)["metrics"]
    losses = [point["loss"] for point in final["loss_curve"]]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert 0 < final["trainable_params"] < final["total_params"] / 10
    weights = load_file(f"{out}/model.safetensors")
    assert "score.weight" in weights and not any("lora" in key or "base_layer" in key for key in weights)
    start = load_file(f"{workdir / 'tiny_teacher'}/model.safetensors")
    key = next(k for k in weights if k.endswith("self_attn.q_proj.weight"))
    assert not np.allclose(weights[key], start[key])  # the adapters are merged into the exported projections
    key = next(k for k in weights if k.endswith("mlp.up_proj.weight"))
    assert np.array_equal(weights[key], start[key])  # what had no adapter is the base model's

    dev = io.read_table(workdir / "corpus" / "judgments" / "dev.parquet")
    model, tokenizer = load_teacher_scorer(out)
    scores = score_pairs_teacher(model, tokenizer, *pair_texts(dev), max_length=config.training.max_length)
    qids, labels = np.asarray(dev["query_id"].to_pylist(), dtype=object), dev["label"].to_numpy()
    assert metrics.pnr(qids, labels, scores) == pytest.approx(final["best"]["pnr"], rel=1e-4)
