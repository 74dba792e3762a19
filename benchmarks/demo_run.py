"""One timed run of the main job (`make demo`'s pipeline) into a fresh folder; its printout and numbers go to
``benchmarks/results/demo.json``, from which docs/results.md and the README's demo table are made.

    python benchmarks/demo_run.py                       # jobs/configs/demo.yaml into outputs/demo_run (removed first)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from disranker import lineage
from disranker.config import load_config
from disranker.models import precision
from disranker.pipeline import run
from disranker.pipeline.config import PipelineConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="jobs/configs/demo.yaml")
    parser.add_argument("--output-dir", default="outputs/demo_run", help="emptied first: every stage runs")
    parser.add_argument("--out", default="benchmarks/results/demo.json")
    args = parser.parse_args(argv)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    config = load_config(PipelineConfig, args.config, [f"output_dir={args.output_dir}"])
    load_start = os.getloadavg()
    started = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - started
    record = lineage.read_lineage(f"{result.output_dir}/pipeline")
    report = {
        "command": f"python benchmarks/demo_run.py --config {args.config}",
        "wall_s": round(wall, 1),
        "stage_seconds": record["metrics"]["stage_seconds"],
        "models": record["metrics"]["models"],
        "summary": result.summary(),
        "machine": {
            "cpu": precision.cpu_model(),
            "cores": len(os.sched_getaffinity(0)),
            "cpu_bf16_flags": precision.cpu_bf16_flags(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(result.summary())
    print(f"wall {wall:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
