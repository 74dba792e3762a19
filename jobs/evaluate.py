"""Evaluate one model's scores against graded judgments (PNR, NDCG@k, MRR@10).

Locally:    python -m jobs.evaluate --config jobs/configs/evaluate.yaml scores=outputs/demo/baselines/bm25.parquet
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.evaluate --config jobs/configs/evaluate.yaml scores=s3://...
"""

from __future__ import annotations

import json

from disranker.config import load_config
from disranker.evaluation import evaluate
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(evaluate.EvaluateConfig, config_path, overrides)
    result = evaluate.run(config)
    print(json.dumps(result.metrics, indent=1))
    print(f"{result.rejected.num_rows} rows rejected; outputs in {config.output_dir or '(not written)'}")


if __name__ == "__main__":
    main()
