"""Train the LLM teacher: continued pre-training on clicks (stage cpt) or rank-loss SFT on judgments (stage sft).

Locally:    python -m jobs.train_teacher --config jobs/configs/teacher_cpt_smoke.yaml
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.train_teacher --config jobs/configs/teacher_sft.yaml \
        scaling.num_workers=8 scaling.use_gpu=true deepspeed.preset=zero3 output_dir=s3://bucket/teacher_sft
"""

from __future__ import annotations

import json

from disranker import lineage
from disranker.config import load_config
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(TeacherConfig, config_path, overrides)
    output_dir = train.run(config)
    record = lineage.read_lineage(output_dir) or {}
    summary = {k: v for k, v in record.get("metrics", {}).items() if k not in ("loss_curve", "dev")}
    print(json.dumps(summary, indent=1))
    print(f"teacher ({config.stage}) written to {output_dir}")


if __name__ == "__main__":
    main()
