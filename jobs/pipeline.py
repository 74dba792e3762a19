"""The main job: every stage in order, ending with one comparison table.

Locally:    python -m jobs.pipeline --config jobs/configs/demo.yaml    (or --size tiny|demo)
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.pipeline --config jobs/configs/demo.yaml output_dir=s3://bucket/demo
"""

from __future__ import annotations

from disranker import pipeline
from disranker.config import load_config
from jobs._args import parse_with_size


def main(argv: list[str] | None = None) -> None:
    config_path, overrides, size = parse_with_size(argv, __doc__, tuple(pipeline.SIZE_CONFIGS))
    config = load_config(pipeline.PipelineConfig, pipeline.config_for_size(size, config_path), overrides)
    result = pipeline.run(config)
    print(result.summary())
    print(f"outputs: {result.output_dir}")


if __name__ == "__main__":
    main()
