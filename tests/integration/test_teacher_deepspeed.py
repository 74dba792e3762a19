"""DeepSpeed ZeRO-2 and ZeRO-3 inside Ray Train on CPU: 2 gloo workers, a torch AdamW (no CPU-Adam build), tiny Llama.

ZeRO-3 partitions the weights themselves across the 2 workers, so its export is the consolidated model gathered from
both partitions (``stage3_gather_16bit_weights_on_model_save``): every tensor has its full shape and loads unchanged.

The first DeepSpeed run on a machine compiles a communication op (~45 s, cached in ~/.cache/torch_extensions or
$TORCH_EXTENSIONS_DIR); later runs take seconds."""

from __future__ import annotations

import pytest
import torch

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.models.loading import load_teacher_lm
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig
from disranker.testing.smoke import teacher_overrides

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("preset", "lora"), [("zero2", False), ("zero3", False), ("zero3", True)])
def test_zero_cpt_trains_checkpoints_and_exports(ray_start_2_cpus, smoke_inputs, tmp_path, preset, lora):
    """With LoRA under ZeRO-3 the gathered weights hold the adapters; the export merges them (models.lora)."""
    config = load_config(
        TeacherConfig,
        "jobs/configs/teacher_cpt_smoke.yaml",
        [
            f"output_dir={tmp_path / 'cpt'}",
            *teacher_overrides(smoke_inputs),
            "data.max_examples=8",
            "training.epochs=6",
            "run.checkpoint_every_steps=3",  # a DeepSpeed checkpoint (each rank's partition) mid-run
            f"deepspeed.preset={preset}",
            *(["model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"] if lora else []),
        ],
    )
    out = train.run(config)

    final = lineage.read_lineage(out)["metrics"]
    assert final["step"] == 6 and len(final["loss_curve"]) == 6
    assert final["last_loss"] < final["first_loss"]
    assert lineage.read_lineage(out)["config"]["deepspeed"]["preset"] == preset
    assert io.exists(f"{out}/model.safetensors")
    model, tokenizer = load_teacher_lm(out)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    base, _ = load_teacher_lm(smoke_inputs["tiny_teacher"])
    trained, start = model.state_dict(), base.state_dict()
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in start.items()}  # whole, not partitions
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # and it is the trained model
