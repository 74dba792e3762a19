"""Loss ablation at the demo's budget: the hybrid loss against Point-MSE and Margin-MSE alone, on the demo's labels.

A finished demo run (``make demo`` or ``benchmarks/demo_run.py``) holds the teacher, its labels of the pool sample and
the distilled student. This script retrains that student, with the very config its ``disranker.json`` records and
only ``loss.name`` and ``training.seed`` changed, for each loss (hybrid = L_point + λ·L_margin, point, margin) and
seed; scores the teacher and every student with the comparison stage on ``--test-queries`` test queries (a seeded
sample of the corpus's test split, never used for a choice); and reports per-query NDCG@10 with paired-bootstrap 95 %
intervals (a loss's per-query value is its mean over seeds). The best single loss is picked on dev (each run's best
dev epoch), not on test. The claim ``hybrid_minus_best_single`` goes into this JSON and, tagged with its source and
pool size, into ``quality_study.json``'s ``claims``. Runs are seed by seed and the JSON is rewritten after each seed;
a rerun skips finished students (their own lineage check).

    nohup python benchmarks/distill_ablation.py --demo-dir outputs/demo_run > outputs/ablation.log 2>&1 &
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from disranker import lineage
from disranker.config import from_dict, load_config
from disranker.data import io
from disranker.evaluation import compare
from disranker.evaluation.statistics import paired_bootstrap
from disranker.pipeline import samples
from disranker.student import train as student_train
from disranker.student.config import DistillConfig
from quality_claims import CLAIM_RULES, per_query_ndcg  # benchmarks/ is the script's folder, first on sys.path

LOSSES = ("hybrid", "point", "margin")
CLAIM = "hybrid_minus_best_single"


def student_config(demo_student: str, loss: str, seed: int, output_dir: str) -> DistillConfig:
    """The demo student's recorded config with one loss and seed, written to ``output_dir``."""
    base = from_dict(DistillConfig, lineage.read_lineage(demo_student)["config"])
    return dataclasses.replace(
        base,
        output_dir=output_dir,
        loss=dataclasses.replace(base.loss, name=loss),
        training=dataclasses.replace(base.training, seed=seed),
    )


def summarize(compare_dirs: list[str], test: str, students: dict[str, str], seeds: list[int]) -> dict:
    """Test metrics, per-loss seed means and the intervals; the best single loss chosen on dev."""
    table = {k: v for d in compare_dirs for k, v in io.read_json(io.join(d, "metrics.json")).items()}
    ndcg = {k: v for d in compare_dirs for k, v in per_query_ndcg(d, test).items()}
    family = {loss: np.mean([ndcg[f"{loss}_s{s}"] for s in seeds], axis=0) for loss in LOSSES}
    dev = {name: lineage.read_lineage(path)["metrics"]["best"]["value"] for name, path in students.items()}
    dev_mean = {loss: float(np.mean([dev[f"{loss}_s{s}"] for s in seeds])) for loss in LOSSES}
    best_single = max(("point", "margin"), key=dev_mean.get)
    intervals = {
        "hybrid_minus_point": paired_bootstrap(family["hybrid"], family["point"]),
        "hybrid_minus_margin": paired_bootstrap(family["hybrid"], family["margin"]),
        CLAIM: paired_bootstrap(family["hybrid"], family[best_single]),
        "distilled_over_teacher": paired_bootstrap(family["hybrid"], ndcg["teacher"], statistic="ratio"),
    }
    rule, holds = CLAIM_RULES[CLAIM]
    claim = {"name": CLAIM, **intervals[CLAIM].as_dict(), "holds": bool(holds(intervals[CLAIM].as_dict()))}
    return {
        "test_queries": len(ndcg["teacher"]),
        "ndcg@10": {name: float(np.mean(v)) for name, v in {**ndcg, **family}.items()},
        "metrics": {name: {k: table[name][k] for k in ("ndcg@10", "pnr", "mrr@10", "n_queries")} for name in table},
        "dev_value": dev,
        "dev_mean": dev_mean,
        "best_single_loss": best_single,
        "intervals": {name: interval.as_dict() for name, interval in intervals.items()},
        "claim": {**claim, "rule": rule},
    }


def merge_claim(claim: dict, study_json: Path, source: str, pool_queries: int) -> None:
    """Put the ablation's claim into the quality study's ``claims``, saying where and at which pool it was measured."""
    if not study_json.is_file():
        return
    study = json.loads(study_json.read_text())
    tagged = {**claim, "source": source, "pool_queries": pool_queries}
    study["claims"] = [c for c in study.get("claims", []) if c["name"] != CLAIM] + [tagged]
    study_json.write_text(json.dumps(study, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="outputs/demo_run", help="a finished demo run's output_dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-queries", type=int, default=300)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--work-dir", default="outputs/bench/ablation")
    parser.add_argument("--out", default="benchmarks/results/distill_ablation.json")
    parser.add_argument("--study-json", default="benchmarks/results/quality_study.json")
    args = parser.parse_args(argv)
    demo_dir, work = io.absolute(args.demo_dir), io.absolute(args.work_dir)
    demo_student = io.join(demo_dir, "distill")
    record = lineage.read_lineage(demo_student)
    if record is None:
        raise SystemExit(f"{demo_student} holds no finished student: run the demo first")
    test_source = io.join(demo_dir, "corpus", "judgments", "test.parquet")
    test = samples.write_sample(test_source, f"{work}/samples/test", args.test_queries, args.sample_seed)
    students: dict[str, str] = {}
    # The teacher is scored once; each seed's students in a comparison of their own.
    entries = [{"name": "teacher", "kind": "teacher", "path": io.join(demo_dir, "teacher_sft")}]
    compare_dirs = []
    for done, seed in enumerate(args.seeds, start=1):
        for loss in LOSSES:
            config = student_config(demo_student, loss, seed, f"{work}/{loss}_s{seed}")
            students[f"{loss}_s{seed}"] = student_train.run(config)
            entries.append({"name": f"{loss}_s{seed}", "kind": "student", "path": students[f"{loss}_s{seed}"]})
        compare_dirs.append(compare.run(load_config(compare.CompareConfig, "jobs/configs/compare.yaml", [
            f"output_dir={work}/compare_s{seed}", f"judgments={test}", f"models={json.dumps(entries)}",
            "max_length=96", "batch_size=16",
        ])))  # fmt: skip
        entries = []
        seeds = args.seeds[:done]
        result = summarize(compare_dirs, test, students, seeds)
        labels = record["config"]["data"]["labels"]
        report = {
            "demo_dir": demo_dir,
            "labels": labels,
            "pool_queries": samples.query_count(io.join(demo_dir, "samples", "pool")),
            "seeds": seeds,
            "student_seconds": {n: lineage.read_lineage(p)["metrics"]["wall_s"] for n, p in students.items()},
            **result,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        for name, interval in result["intervals"].items():
            print(f"{len(seeds)} seeds  {name:<26} {interval['value']:+.4f} "
                  f"[{interval['ci_low']:+.4f}, {interval['ci_high']:+.4f}]", flush=True)  # fmt: skip
    merge_claim(result["claim"], Path(args.study_json), Path(args.out).name, report["pool_queries"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
