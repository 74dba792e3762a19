"""Distil the teacher's labels into the BERT cross-encoder student (Point-MSE + λ·Margin-MSE on Ray Train).

Locally:    python -m jobs.distill --config jobs/configs/distill_smoke.yaml
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.distill --config jobs/configs/distill.yaml \
        output_dir=s3://bucket/distill scaling.num_workers=8 scaling.use_gpu=true
"""

from __future__ import annotations

import json

from disranker import lineage
from disranker.config import load_config
from disranker.student import train
from disranker.student.config import DistillConfig
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(DistillConfig, config_path, overrides)
    folder = train.run(config)
    metrics = (lineage.read_lineage(folder) or {}).get("metrics", {})
    print(json.dumps({"dev": metrics.get("dev"), "best": metrics.get("best")}, indent=1))
    print(f"student: {folder}")


if __name__ == "__main__":
    main()
