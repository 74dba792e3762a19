"""One timed run of the main job (`make demo`'s pipeline) into a fresh folder; its printout and numbers go to
``benchmarks/results/demo.json``, from which docs/results.md and the README's demo table are made.

    python benchmarks/demo_run.py                       # jobs/configs/demo.yaml into outputs/demo_run (removed first)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
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
    samples: list[float] = []
    done = threading.Event()
    sampler = threading.Thread(target=_sample_load, args=(samples, done), daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - started
    done.set()
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
            # The pipeline alone keeps ~2 cores busy; a 1-minute load well above that means another job shared them.
            "loadavg_1min_max": max(samples, default=load_start[0]),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(result.summary())
    print(f"wall {wall:.0f} s; wrote {args.out}")


def _sample_load(samples: list[float], done: threading.Event, every_s: float = 30.0) -> None:
    while not done.wait(every_s):
        samples.append(os.getloadavg()[0])


if __name__ == "__main__":
    main()
