"""The quality study: does the DisRanker ordering hold on the demo task, and at which human-label budget?

For each label budget L (train queries with their human grades) and one fixed unlabeled pool, through the stage code
(Ray Train, Ray Data, the comparison stage), all on the small WordNet demo corpus:

- teacher CPT on the click log (once; the clicks are a separate, cheaper signal than grades);
- teacher SFT on the L queries, from the CPT folder (``teacher``) and from the base model (``teacher_no_cpt``);
- the labels-only student on the same L queries' grades (seeds);
- the pool labeled by ``teacher``; the distilled student on those labels with the hybrid loss (seeds), and at the
  demo's budget with Point-MSE and Margin-MSE alone (the loss ablation);
- every model scored on the same ``--test-queries`` test queries; model selection (best epoch) on dev only.

Claims rest on per-query NDCG@10 with a paired bootstrap 95 % interval over test queries
(``disranker.evaluation.statistics``); a student's per-query value is the mean over its seeds. The JSON holds the
per-budget metrics, every interval, and a top-level ``claims`` list at ``--demo-budget``; a learning-curve PNG goes
beside it. Every stage skips itself when its folder already holds the same run, so an interrupted study resumes where
it stopped (rerun the same command); the JSON is rewritten after each budget.

    nohup python benchmarks/quality_study.py --budgets 100 300 --demo-budget 100 > quality_study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from disranker import lineage
from disranker.config import load_config
from disranker.data import demo, io
from disranker.evaluation import compare
from disranker.labeling import pipeline as labeling
from disranker.labeling.config import LabelConfig
from disranker.pipeline import samples
from disranker.student.config import DistillConfig
from disranker.teacher import train as teacher_train
from disranker.teacher.config import TeacherConfig
from quality_claims import claims, plot_learning_curve, summarize  # benchmarks/ is first on sys.path
from quality_stages import Study, distill_loss_overrides, distill_variant, pool_suffix, teacher_overrides

SINGLE_LOSSES = ("point", "margin")


def run_budget(study: Study, budget: int, cpt: str, dev: str, pool: str, test: str) -> dict:
    a = study.args
    train = study.sample(f"train_{budget}", io.join(a.corpus, "judgments", "train.parquet"), budget)
    b = f"L{budget}"
    models = {
        "teacher": study.teacher(f"{b}/teacher", cpt, train, dev),
        "teacher_no_cpt": study.teacher(f"{b}/teacher_no_cpt", "packaged:smollm2", train, dev),
    }
    for seed in a.seeds:
        models[f"labels_only_s{seed}"] = study.student(f"{b}/labels_only_s{seed}", "labels_only", train, dev, seed)
    label_overrides = [
        f"pool={pool}",
        f"teacher.spec={models['teacher']}",
        f"teacher.max_length={a.max_length}",
        "teacher.batch_size=16",
    ]
    # What depends on the pool has a folder per pool size (and pool corpus), so that pools can be compared.
    p = f"{b}/pool{a.pool_queries}{pool_suffix(a)}"
    labels = study.stage(f"{p}/labels", labeling.run, LabelConfig, "jobs/configs/label.yaml", label_overrides)
    losses = ["hybrid", *(a.ablation_losses if budget == a.demo_budget else ())]
    for loss in losses:
        for seed in a.seeds:
            folder = f"{p}/{loss}{distill_variant(a)}_s{seed}"
            models[f"{loss}_s{seed}"] = study.student(folder, "teacher", labels, dev, seed, loss)
    dev = {name: lineage.read_lineage(path)["metrics"]["best"] for name, path in models.items()}
    if a.dev_only:
        return {"budget": budget, "dev_best": dev}
    entries = [{"name": "bm25", "kind": "bm25"}] + [
        {"name": name, "kind": "teacher" if name.startswith("teacher") else "student", "path": path}
        for name, path in models.items()
    ]
    compare_overrides = [
        f"judgments={test}",
        f"models={json.dumps(entries)}",
        f"max_length={a.max_length}",
        "batch_size=16",
    ]
    compare_dir = study.stage(f"{p}/compare", compare.run, compare.CompareConfig, "jobs/configs/compare.yaml",
                              compare_overrides)  # fmt: skip
    return summarize(budget, compare_dir, test, losses, a.seeds, dev)


def check_unseen(pool: str, splits: dict[str, str]) -> None:
    """Refuse a pool that shares a query with a judged split: its teacher labels would leak that split's queries."""
    pool_ids = set(io.read_table(pool, columns=["query_id"])["query_id"].to_pylist())
    for name, folder in splits.items():
        shared = pool_ids & set(io.read_table(folder, columns=["query_id"])["query_id"].to_pylist())
        if shared:
            raise ValueError(f"the pool ({pool}) shares {len(shared)} queries with the {name} split, e.g. "
                             f"{sorted(shared)[0]!r}: pick a pool corpus whose pool is disjoint from it")  # fmt: skip


def record_trial(args, budget_result: dict, pool: str, dev: str) -> None:
    """Print each model's best dev NDCG@10 and its share of the teacher's (how a recipe trial is judged) and keep the
    distilled students' in ``--trials`` under the trial's name, beside the trials run before."""
    best = budget_result["dev_best"]
    teacher = best["teacher"]["ndcg@10"]
    print(f"L{budget_result['budget']} dev NDCG@10 (share of the teacher's):")
    for name, value in best.items():
        print(f"  {name:<20} {value['ndcg@10']:.4f} ({value['ndcg@10'] / teacher:.3f}) epoch {value['epoch']}")
    students = {name: value for name, value in best.items() if name.startswith("hybrid_")}
    mean = sum(value["ndcg@10"] for value in students.values()) / len(students)
    name = f"L{budget_result['budget']}/pool{args.pool_queries}{pool_suffix(args)}/hybrid{distill_variant(args)}"
    path = Path(args.trials)
    trials = json.loads(path.read_text())["trials"] if path.exists() else {}
    trials[name] = {
        "pool_queries": samples.query_count(pool),
        "pool_corpus": args.pool_corpus,
        "dev_queries": samples.query_count(dev),
        "distill_epochs": args.distill_epochs or args.student_epochs,
        "margin_weight": args.margin_weight,
        "normalize": args.normalize,
        "student_lr": args.student_lr,
        "teacher_dev_ndcg@10": teacher,
        "students": {name: {"ndcg@10": v["ndcg@10"], "epoch": v["epoch"]} for name, v in students.items()},
        "share_of_teacher": mean / teacher,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"trials": dict(sorted(trials.items()))}, indent=2) + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="outputs/demo/corpus", help="small demo corpus (built when missing)")
    parser.add_argument("--work-dir", default="outputs/bench/quality_study")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--demo-budget", type=int, default=100, help="the budget of the claims list and the ablation")
    parser.add_argument("--pool-queries", type=int, default=200)
    parser.add_argument(
        "--pool-corpus",
        help="a demo corpus whose pool is sampled (default: --corpus); the full size's, built with the same seed, "
        "has 62,818 pool queries, none among the small corpus's judged ones (checked)",
    )
    parser.add_argument("--dev-queries", type=int, default=50)
    parser.add_argument("--test-queries", type=int, default=300)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="student seeds")
    parser.add_argument("--cpt-steps", type=int, default=150)
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--sft-lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--rank-loss", default="hinge")
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--student-epochs", type=int, default=6, help="the best dev epoch is kept")
    parser.add_argument("--distill-epochs", type=int, help="distilled students' epochs (default: --student-epochs)")
    parser.add_argument("--margin-weight", type=float, default=1.0, help="distilled students' λ (loss.margin_weight)")
    parser.add_argument("--normalize", default="none", help="distilled students' target scaling (loss.normalize)")
    parser.add_argument("--groups-per-batch", type=int, default=4, help="student query groups per step")
    parser.add_argument("--student-lr", type=float, default=5e-5)
    parser.add_argument("--student-max-length", type=int, default=128)
    parser.add_argument(
        "--ablation-losses", nargs="*", default=list(SINGLE_LOSSES), help="single losses at --demo-budget (none: skip)"
    )
    parser.add_argument(
        "--dev-only", action="store_true", help="train and print dev scores only: a recipe trial, test untouched"
    )
    parser.add_argument("--out", default="benchmarks/results/quality_study.json")
    parser.add_argument("--trials", default="benchmarks/results/quality_trials.json", help="--dev-only's record")
    args = parser.parse_args(argv)
    # The distill stage's own checks on --margin-weight / --normalize, now rather than hours later at the first student.
    load_config(DistillConfig, "jobs/configs/distill.yaml", distill_loss_overrides(args))
    args.corpus = io.absolute(args.corpus)
    demo.run(demo.DemoCorpusConfig(size="small", output_dir=args.corpus))
    study = Study(args)
    dev = study.sample("dev", io.join(args.corpus, "judgments", "dev.parquet"), args.dev_queries)
    test = study.sample("test", io.join(args.corpus, "judgments", "test.parquet"), args.test_queries)
    args.pool_corpus = io.absolute(args.pool_corpus) if args.pool_corpus else args.corpus
    pool = study.sample(f"pool{pool_suffix(args)}", io.join(args.pool_corpus, "pool.parquet"), args.pool_queries)
    check_unseen(pool, {"dev": dev, "test": test, "train": io.join(args.corpus, "judgments", "train.parquet")})
    cpt_overrides = [
        f"data.clicks={io.join(args.corpus, 'clicks.parquet')}",
        f"training.max_steps={args.cpt_steps}",
        "training.batch_size=8",
        "training.grad_accumulation=1",
        f"training.warmup_steps={max(1, args.cpt_steps // 10)}",
        *teacher_overrides(args),
    ]
    cpt = study.stage("teacher_cpt", teacher_train.run, TeacherConfig, "jobs/configs/teacher_cpt.yaml", cpt_overrides)
    budgets = []
    for budget in args.budgets:
        budgets.append(run_budget(study, budget, cpt, dev, pool, test))
        if args.dev_only:
            record_trial(args, budgets[-1], pool, dev)
            continue
        demo_result = next((b for b in budgets if b["budget"] == args.demo_budget), None)
        result = {
            "settings": vars(args),
            "pool_queries": samples.query_count(pool),
            "dev_queries": samples.query_count(dev),  # a split smaller than --dev-queries is taken whole
            "claims": claims(demo_result) if demo_result else [],
            "budgets": budgets,
            "stage_seconds": study.seconds,
            "cpt_last_loss": (lineage.read_lineage(cpt) or {}).get("metrics", {}).get("last_loss"),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        plot_learning_curve(budgets, Path(args.out).with_suffix(".png"))
        for claim in result["claims"]:
            print(f"{claim['name']:<28} {claim['value']:+.4f} [{claim['ci_low']:+.4f}, {claim['ci_high']:+.4f}] "
                  f"holds={claim['holds']}")  # fmt: skip
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
