"""Label a pool with the teacher: Ray Data + teacher actors (transformers or vLLM), exactly once and resumable.

Locally:    python -m jobs.label --config jobs/configs/label_smoke.yaml
On a Ray cluster (GPU actors, vLLM):
    ray job submit --working-dir . -- python -m jobs.label --config jobs/configs/label.yaml \
        pool=s3://bucket/demo/corpus/pool.parquet output_dir=s3://bucket/demo/label scoring.backend=vllm \
        scaling.use_gpu=true scaling.num_workers=4 scaling.cpus_per_worker=4
"""

from __future__ import annotations

from disranker import labeling, lineage
from disranker.config import load_config
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(labeling.LabelConfig, config_path, overrides)
    output_dir = labeling.run(config)
    print(lineage.read_lineage(output_dir)["metrics"]["summary"])
    print(f"labels: {output_dir}/labels  rejected: {output_dir}/rejected")


if __name__ == "__main__":
    main()
