"""DeepSpeed ZeRO-2 inside Ray Train on CPU: 2 gloo workers, a torch AdamW (no CPU-Adam build), tiny Llama.

The first DeepSpeed run on a machine compiles a communication op (~45 s, cached in ~/.cache/torch_extensions or
$TORCH_EXTENSIONS_DIR); later runs take seconds."""

from __future__ import annotations

import pytest

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.models.loading import load_teacher_lm
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig

pytestmark = pytest.mark.integration


def test_zero2_cpt_trains_checkpoints_and_exports(ray_start_2_cpus, tmp_path):
    config = load_config(
        TeacherConfig,
        "jobs/configs/teacher_cpt_smoke.yaml",
        [
            f"output_dir={tmp_path / 'cpt'}",
            f"model.spec={tmp_path / 'tiny'}",
            f"data.demo.output_dir={tmp_path / 'corpus'}",
            "data.max_examples=8",
            "training.epochs=6",
            "run.checkpoint_every_steps=3",  # a DeepSpeed checkpoint (each rank's partition) mid-run
            "deepspeed.preset=zero2",
        ],
    )
    out = train.run(config)

    final = lineage.read_lineage(out)["metrics"]
    assert final["step"] == 6 and len(final["loss_history"]) == 6
    assert final["last_loss"] < final["first_loss"]
    assert lineage.read_lineage(out)["config"]["deepspeed"]["preset"] == "zero2"
    assert io.exists(f"{out}/model.safetensors")
    model, tokenizer = load_teacher_lm(out)
    assert model.config.pad_token_id == tokenizer.pad_token_id
