"""Compare models on one test split: BM25, a random order, teachers and students (metrics, TREC runs, report.png).

Locally:    python -m jobs.compare --config jobs/configs/compare_smoke.yaml
On a Ray cluster:
    ray job submit --working-dir . -- python -m jobs.compare --config jobs/configs/compare.yaml \
        output_dir=s3://bucket/compare device=cuda
"""

from __future__ import annotations

from disranker.config import load_config
from disranker.data import io
from disranker.evaluation import compare
from disranker.evaluation.report import metrics_table
from jobs._args import parse


def main(argv: list[str] | None = None) -> None:
    config_path, overrides = parse(argv, __doc__)
    config = load_config(compare.CompareConfig, config_path, overrides)
    folder = compare.run(config)
    print(metrics_table(io.read_json(io.join(folder, "metrics.json")), compare.SUMMARY_COLUMNS))
    print(f"outputs (metrics.json, report.png, <model>.run): {folder}")


if __name__ == "__main__":
    main()
