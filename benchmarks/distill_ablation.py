"""Loss ablation of the distillation: Point-MSE only, Margin-MSE only and the hybrid, against the labels-only student.

Every variant starts from one distillation config (``--config`` + dotted overrides, as ``disranker distill`` takes)
and changes only the loss (``loss.name`` = point | margin | hybrid, mode ``teacher``) or the targets (mode
``labels_only``: the same student, loss and loop on the judgments' human grades). Each variant is trained once per
seed with ``disranker.student.train.run`` for ``--max-steps`` steps, then scored on the test split; the table gives
mean ± std over seeds of PNR and NDCG@10 (std with ddof=1; 0 for one seed). ``--teacher`` adds the teacher's own
row and each variant's NDCG@10 as a share of it (the paper's goal: ≥ 97 %).

    python benchmarks/distill_ablation.py --config jobs/configs/distill_student.yaml --seeds 0 1 2 \
        --max-steps 2000 --test outputs/demo/corpus/judgments/test.parquet --teacher outputs/demo/teacher/sft
    # seconds-scale proof on the tiny corpus and tiny random models:
    python benchmarks/distill_ablation.py --config jobs/configs/distill_student_smoke.yaml --seeds 0 --max-steps 20

A finished run is skipped on a rerun (the stage's own lineage check), so an interrupted ablation resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from disranker import lineage
from disranker.config import load_config
from disranker.data import io
from disranker.data.validate import validate_table
from disranker.evaluation.metrics import evaluate_rankings
from disranker.models.loading import load_student, load_teacher_scorer, score_pairs_student, score_pairs_teacher
from disranker.models.text import TEACHER_MAX_LENGTH
from disranker.student import train
from disranker.student.config import DistillConfig

# (variant, mode, loss.name); labels_only keeps the base config's loss.
VARIANTS = (("point", "teacher", "point"), ("margin", "teacher", "margin"), ("hybrid", "teacher", "hybrid"),
            ("labels_only", "labels_only", None))  # fmt: skip
METRICS = ("pnr", "ndcg@10")


def variant_config(base: DistillConfig, mode: str, loss: str | None, seed: int, max_steps: int, out: str):
    """The base config with one variant's mode, loss, seed, step budget and output folder."""
    return dataclasses.replace(
        base,
        output_dir=out,
        mode=mode,
        loss=base.loss if loss is None else dataclasses.replace(base.loss, name=loss),
        training=dataclasses.replace(base.training, seed=seed, max_steps=max_steps),
    )


def test_split(base: DistillConfig, given: str | None) -> str:
    if given:
        return given
    if base.data.demo is not None and base.data.demo.output_dir:
        return io.join(base.data.demo.output_dir, "judgments", "test.parquet")
    raise SystemExit("--test is required when the config has no data.demo corpus to take the test split from")


def score_split(judgments, folder: str, kind: str, batch_size: int, max_length: int) -> dict:
    """PNR and NDCG@10 (and the rest of evaluate_rankings) of one model on the test split."""
    if kind == "student":
        load, score = load_student, score_pairs_student
    else:
        load, score = load_teacher_scorer, score_pairs_teacher
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a folder without a trained score head gets a fresh one: keep it reproducible
        model, tokenizer = load(folder)
    texts = [judgments[c].to_pylist() for c in ("query", "title", "summary")]
    scores = score(model, tokenizer, *texts, batch_size=batch_size, max_length=max_length)
    return evaluate_rankings(
        judgments["query_id"].to_numpy(zero_copy_only=False), judgments["label"].to_numpy(), scores, mrr_min_label=4
    )


def summarize(runs: list[dict]) -> dict:
    summary = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in runs], dtype=np.float64)
        summary[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def table(results: dict, teacher: dict | None) -> str:
    header = f"{'variant':<12} {'runs':>4} {'PNR':>17} {'NDCG@10':>17}" + ("  % teacher NDCG@10" if teacher else "")
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        pnr, ndcg = result["summary"]["pnr"], result["summary"]["ndcg@10"]
        row = f"{name:<12} {len(result['runs']):>4} {pnr['mean']:>8.4f} ± {pnr['std']:<6.4f} "
        row += f"{ndcg['mean']:>8.4f} ± {ndcg['std']:<6.4f}"
        if teacher:
            row += f"  {100 * ndcg['mean'] / max(teacher['ndcg@10'], 1e-12):>17.1f}"
        lines.append(row)
    if teacher:
        lines.append(f"{'teacher':<12} {1:>4} {teacher['pnr']:>8.4f}{'':>9} {teacher['ndcg@10']:>8.4f}{'':>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="distillation config every variant starts from")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of that config, e.g. data.labels=…")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=200, help="optimizer steps per run")
    parser.add_argument("--variants", nargs="+", default=[v[0] for v in VARIANTS], choices=[v[0] for v in VARIANTS])
    parser.add_argument("--test", help="test judgments; default: the config's demo corpus test split")
    parser.add_argument("--teacher", help="teacher *ForSequenceClassification folder: adds its row and % of it")
    parser.add_argument("--teacher-max-length", type=int, default=TEACHER_MAX_LENGTH, help="as the labels were scored")
    parser.add_argument("--work-dir", default="outputs/ablation", help="one student folder per variant and seed")
    parser.add_argument("--out", default="benchmarks/results/distill_ablation.json")
    args = parser.parse_args(argv)

    base = load_config(DistillConfig, args.config, args.overrides)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    test_uri = None
    for name, mode, loss in (v for v in VARIANTS if v[0] in args.variants):
        runs = []
        for seed in args.seeds:
            out = str(Path(args.work_dir) / f"{name}-seed{seed}")
            folder = train.run(variant_config(base, mode, loss, seed, args.max_steps, out))
            # The stage's own record: still right when a finished run was skipped on a rerun.
            train_s = (lineage.read_lineage(folder) or {}).get("metrics", {}).get("wall_s", float("nan"))
            test_uri = test_uri or test_split(base, args.test)  # the demo corpus exists once a run has built it
            judgments = validate_table(io.read_table(test_uri), "judgments").valid
            metrics = score_split(judgments, folder, "student", base.training.eval_batch_size, base.student.max_length)
            runs.append({"seed": seed, "output_dir": folder, "train_s": round(train_s, 1), **metrics})
            print(f"{name} seed {seed}: PNR {metrics['pnr']:.4f} NDCG@10 {metrics['ndcg@10']:.4f} ({train_s:.0f} s)")
        results[name] = {"mode": mode, "loss": loss or base.loss.name, "runs": runs, "summary": summarize(runs)}
    teacher = None
    if args.teacher:
        judgments = validate_table(io.read_table(test_uri), "judgments").valid
        teacher = score_split(
            judgments, args.teacher, "teacher", base.training.eval_batch_size, args.teacher_max_length
        )

    print(table(results, teacher))
    report = {
        "config": args.config,
        "overrides": args.overrides,
        "seeds": args.seeds,
        "max_steps": args.max_steps,
        "test": test_uri,
        "teacher": {"path": args.teacher, **teacher} if teacher else None,
        "variants": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
