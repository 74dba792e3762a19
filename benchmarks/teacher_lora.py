"""LoRA against full fine-tuning for the teacher SFT: trainable parameters, time per step, peak memory, dev NDCG@10.

Both runs start from a finished demo run's SFT config (its ``disranker.json``: the CPT teacher, the 100 labeled
queries, the dev sample, packed bf16 groups), change only ``model.lora`` (and, for LoRA, the learning rate: adapters
start at zero and want a larger one; stated in the JSON), and train the same steps. Each run is a fresh subprocess
whose processes are sampled for RSS; the Ray Train worker's peak is the memory figure.

    python benchmarks/teacher_lora.py --demo-dir outputs/demo_run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from disranker import lineage
from disranker.config import from_dict
from disranker.data import io
from disranker.models.lora import LoraSection
from disranker.teacher import train as teacher_train
from disranker.teacher.config import TeacherConfig
from process_peak import measure_roles, run_child  # benchmarks/ is the script's folder, first on sys.path

LORA = LoraSection(r=16, alpha=32, dropout=0.05)
LORA_LR = 2e-4


def child(task: dict) -> dict:
    base = from_dict(TeacherConfig, lineage.read_lineage(task["sft"])["config"])
    lora = LORA if task["mode"] == "lora" else None
    training = dataclasses.replace(base.training, lr=LORA_LR) if lora else base.training
    model = dataclasses.replace(base.model, lora=lora)
    config = dataclasses.replace(base, output_dir=task["out"], model=model, training=training)
    out = teacher_train.run(config)
    metrics = lineage.read_lineage(out)["metrics"]
    return {
        "mode": task["mode"], "lr": training.lr, "lora": dataclasses.asdict(lora) if lora else None,
        "steps": metrics["step"], "wall_s": metrics["wall_s"], "s_per_step": metrics["wall_s"] / metrics["step"],
        "trainable_params": metrics["trainable_params"], "total_params": metrics["total_params"],
        "first_loss": metrics["first_loss"], "last_loss": metrics["last_loss"], "dev_best": metrics["best"],
    }  # fmt: skip


def role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    return "train worker" if "RayTrainWorker" in text else "driver" if "--child" in text else "other"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="outputs/demo_run")
    parser.add_argument("--work-dir", default="outputs/bench/teacher_lora")
    parser.add_argument("--out", default="benchmarks/results/teacher_lora.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, child)
    work = Path(io.absolute(args.work_dir))
    work.mkdir(parents=True, exist_ok=True)
    sft = io.join(io.absolute(args.demo_dir), "teacher_sft")
    runs = []
    for mode in ("full", "lora"):
        task = {"name": mode, "mode": mode, "sft": sft, "out": str(work / mode)}
        runs.append(measure_roles(__file__, task, work, sample_s=1.0, role=role))
        print(json.dumps(runs[-1]), flush=True)
    full, lora = runs
    report = {
        "sft_config_from": sft,
        "loadavg_end": os.getloadavg(),
        "runs": runs,
        "lora_over_full": {
            "s_per_step": lora["s_per_step"] / full["s_per_step"],
            "worker_peak_rss": lora["peak_rss_mb"]["train worker"] / full["peak_rss_mb"]["train worker"],
            "trainable_params": lora["trainable_params"] / full["trainable_params"],
        },
    }
    print(f"{'mode':<6} {'trainable':>12} {'s/step':>7} {'worker MiB':>10} {'dev NDCG@10':>11}")
    for r in runs:
        print(f"{r['mode']:<6} {r['trainable_params']:>12,} {r['s_per_step']:>7.2f} "
              f"{r['peak_rss_mb']['train worker']:>10} {r['dev_best']['ndcg@10']:>11.4f}")  # fmt: skip
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
