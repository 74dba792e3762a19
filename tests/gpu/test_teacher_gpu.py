"""Teacher training on a CUDA GPU: bf16 with DDP (nccl) and DeepSpeed ZeRO-3 with a consolidated 16-bit export."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from disranker import lineage
from disranker.config import load_config
from disranker.models.loading import load_teacher_scorer
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig
from disranker.testing.smoke import teacher_overrides

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def ray_one_gpu():
    import ray

    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def sft_config(tmp_path, smoke_inputs, *overrides: str) -> TeacherConfig:
    return load_config(
        TeacherConfig,
        "jobs/configs/teacher_sft_smoke.yaml",
        [
            f"output_dir={tmp_path / 'sft'}",
            *teacher_overrides(smoke_inputs),
            "scaling.num_workers=1",
            "scaling.use_gpu=true",
            "training.precision=bf16",
            "training.epochs=2",
            *overrides,
        ],
    )


@pytest.mark.parametrize("deepspeed", [[], ["deepspeed.preset=zero3"]], ids=["ddp-bf16", "zero3-bf16"])
def test_sft_bf16_on_gpu_trains_and_exports(ray_one_gpu, smoke_inputs, tmp_path, deepspeed):
    out = train.run(sft_config(tmp_path, smoke_inputs, *deepspeed))

    final = lineage.read_lineage(out)["metrics"]
    assert final["step"] == 2 * final["steps_per_epoch"]
    assert all(torch.isfinite(torch.tensor([point["loss"] for point in final["loss_curve"]])))
    model, _ = load_teacher_scorer(out)
    weights = model.state_dict()
    assert "score.weight" in weights and all(torch.isfinite(w.float()).all() for w in weights.values())
    if deepspeed:  # ZeRO-3 gathered its partitions into one 16-bit file
        assert load_file(f"{out}/model.safetensors")["score.weight"].dtype == torch.bfloat16
