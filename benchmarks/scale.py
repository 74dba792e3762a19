"""The full demo pool (1,256,360 pairs) through labeling and distillation on this machine, with faults on the way.

For each pool fraction (default 10 % and 100 %), in a fresh subprocess whose processes are sampled for RSS:

1. labeling with 2 Ray Data actors and a small real teacher (the tiny Llama scorer of ``testing.tiny``, named in
   the JSON). At the largest fraction one actor kills itself after its first call (``crash_scorer_once``),
   then the driver is SIGKILLed with its Ray once a fifth of the shards are written, and rerun to the end;
2. distillation of a tiny BERT student from all those labels, 2 Ray Train workers, one epoch, the training table
   streamed through Ray Data; at the largest fraction worker 0 raises after a step (``FaultInjection``) and the run
   resumes from its checkpoint, every step's group ids traced.

Then, outside the measured processes: labeled + rejected = pool rows exactly, no (query_id, doc_id) twice, 10,000
random labels equal to a clean rescoring to 1e-5, every group trained at most once per epoch and the trained count
equal to steps × workers × groups per step. Peak RSS is per process, grouped by role (driver, actor, worker, …); the
ratio of each role's peak at 100 % to its peak at 10 % is the memory claim. JSON after each fraction.

    nohup python benchmarks/scale.py > outputs/bench/scale.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from disranker.config import load_config, to_dict
from disranker.data import demo, io
from disranker.faults import FaultInjection
from disranker.labeling import LabelConfig
from disranker.labeling.backends import TransformersScorer
from disranker.models import precision
from disranker.pipeline import samples
from faults import exactly_once  # benchmarks/ is the script's folder, first on sys.path
from process_peak import kill_tree, measure_roles, run_child

REPO = Path(__file__).resolve().parents[1]
TEACHER = "tiny Llama scorer (testing.tiny.build_tiny_scorer: 2 layers, hidden 128, seeded score head)"
FAULT_AFTER_STEP, CHECKPOINT_EVERY = 300, 200


def label_overrides(task: dict) -> list[str]:
    return [f"pool={task['pool']}", f"teacher.spec={task['teacher']}", f"output_dir={task['labels']}",
            "rows_per_shard=20000", "teacher.batch_size=64", "teacher.max_length=128", "scoring.rows_per_call=512",
            "scoring.precision=fp32", "scaling.num_workers=2", "scaling.cpus_per_worker=0.5"]  # fmt: skip


def distill_overrides(task: dict) -> list[str]:
    return [f"output_dir={task['student_out']}", "mode=teacher", f"data.labels={task['labels']}",
            f"data.dev={task['dev']}", f"student.model={task['student']}", "student.max_length=128",
            "training.epochs=1", "training.group_size=16", "training.groups_per_batch=8", "training.lr=1e-3",
            "training.log_every_steps=50", f"run.checkpoint_every_steps={CHECKPOINT_EVERY}", "run.max_failures=1",
            "scaling.num_workers=2", "scaling.cpus_per_worker=0.875"]  # fmt: skip


def child(task: dict) -> dict:
    """One fraction's stages (runs in the measured subprocess)."""
    from disranker.student import train as student_train
    from disranker.student.config import DistillConfig

    labels, seconds = Path(task["labels"]), {}
    command = [sys.executable, "-m", "jobs.label", "--config", "jobs/configs/label.yaml",
               *label_overrides(task)]  # fmt: skip
    started = time.perf_counter()
    faults = {}
    if task["faults"]:
        env = {**os.environ, **FaultInjection(crash_scorer_once=str(labels.parent / "actor-crashed")).env()}
        process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        want = max(1, task["shards"] // 5)
        while len(list((labels / "labels").glob("[!.]*.parquet"))) < want and process.poll() is None:
            time.sleep(0.5)
        faults["driver_killed_after_shards"] = len(list((labels / "labels").glob("[!.]*.parquet")))
        kill_tree(process)
        faults["actor_killed"] = (labels.parent / "actor-crashed").exists()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    seconds["label"] = time.perf_counter() - started

    started = time.perf_counter()
    fault = FaultInjection(after_step=FAULT_AFTER_STEP if task["faults"] else None, trace_dir=task["trace"])
    student_train.run(load_config(DistillConfig, "jobs/configs/distill.yaml", distill_overrides(task)), fault)
    seconds["distill"] = time.perf_counter() - started
    return {"seconds": seconds, "faults": faults}


def check(task: dict) -> dict:
    """Exactly once, scores reproducible, groups counted (outside the measured processes)."""
    labels_dir = Path(task["labels"])
    once = exactly_once(task["pool"], labels_dir)
    record = io.read_json(labels_dir / "disranker.json")
    labels = io.read_table(labels_dir / "labels")
    rows = np.random.default_rng(0).choice(labels.num_rows, size=min(10_000, labels.num_rows), replace=False)
    sample = labels.take(rows)
    config = load_config(LabelConfig, "jobs/configs/label.yaml", label_overrides(task))
    scorer = TransformersScorer(to_dict(config.teacher), to_dict(config.scoring), use_gpu=False)
    again = scorer.score(*(sample[c].to_pylist() for c in ("query", "title", "summary")))
    diff = float(np.max(np.abs(again - sample["teacher_score"].to_numpy())))

    student = io.read_json(Path(task["student_out"]) / "disranker.json")["metrics"]
    kept = _surviving_steps(Path(task["trace"]))
    ids = [i for line in kept for i in line["ids"]]
    expected = student["steps_per_epoch"] * 2 * 8  # one epoch: steps × workers × groups per step
    return {
        **once,
        "labeled": record["metrics"]["labeled"],
        "rejected": record["metrics"]["rejected"],
        "rescored": len(rows),
        "rescore_max_abs_diff": diff,
        "scores_equal": diff <= 1e-5,
        "groups_available": sum(student["groups_per_worker"]),
        "groups_trained": len(ids),
        "groups_expected": expected,
        "groups_trained_twice": len(ids) - len(set(ids)),
        "group_count_exact": len(ids) == expected == len(set(ids)),
        "resumed_from_steps": student["resumed_from_steps"],
        "train_rows": student["train_rows"],
        "last_loss": student["last_loss"],
        "dev": student["best"],
    }


def _surviving_steps(trace: Path) -> list[dict]:
    """The traced steps the final model holds: a failed attempt's steps up to the checkpoint the next one resumed
    from, and every step of the last attempt (one attempt: all of them)."""
    lines = [json.loads(line) for path in sorted(trace.glob("rank-*.jsonl")) for line in path.open()]
    resumes = sorted({line["resumed_from"] for line in lines if line["resumed_from"] is not None})
    last = resumes[-1] if resumes else None
    if last is None:
        return lines
    return [x for x in lines if x["resumed_from"] == last or (x["resumed_from"] is None and x["step"] <= last)]


def role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    for needle, name in (("jobs.label", "label driver"), ("scale.py --child", "distill driver"),
                         ("TransformersScorer", "labeling actor"), ("RayTrainWorker", "train worker"),
                         ("TrainController", "train controller")):  # fmt: skip
        if needle in text:
            return name
    if "ray::" in text:  # named by what it runs (a process is renamed as it takes other work): the growth's owner
        task = text.split("ray::", 1)[1].split()[0].split("(")[0].split(".")[0]
        return "ray task " + task.rsplit(":", 1)[-1]  # a named actor's title: "<name>:<class>"
    return "ray system"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="outputs/bench/scale")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    parser.add_argument("--size", default="full", help="demo corpus size (tiny: a dry run of the script in minutes)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, child)
    from disranker.testing.tiny import build_tiny_scorer, build_tiny_student

    work = Path(io.absolute(args.work_dir)) / args.size
    corpus = demo.run(demo.DemoCorpusConfig(size=args.size, output_dir=str(work / "corpus")))
    pool_all = io.join(corpus, "pool.parquet")
    n_queries = len(set(io.read_table(pool_all, columns=["query_id"])["query_id"].to_pylist()))
    teacher, student = build_tiny_scorer(work / "teacher"), build_tiny_student(work / "student0")
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report |= {"teacher": TEACHER, "cpu": precision.cpu_model(), "fractions": report.get("fractions", {})}
    for fraction in args.fractions:
        name = f"f{fraction:g}"
        pool = samples.write_sample(pool_all, str(work / name / "pool"), round(fraction * n_queries), seed=0)
        pool_rows = io.read_table(pool, columns=["query_id"]).num_rows
        task = {
            "name": name,
            "pool": pool,
            "teacher": teacher,
            "student": student,
            "labels": str(work / name / "labels"),
            "student_out": str(work / name / "student"),
            "dev": io.join(corpus, "judgments", "dev.parquet"),
            "trace": str(work / name / "trace"),
            "faults": fraction == max(args.fractions),
            "shards": -(-pool_rows // 20000),
        }
        measured = measure_roles(__file__, task, work, sample_s=1.0, role=role)
        result = {"pool_rows": pool_rows, **measured, **check(task)}
        result["rows_per_s"] = {stage: round(pool_rows / s, 1) for stage, s in result["seconds"].items()}
        report["fractions"][name] = result
        _summarize(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        shown = {k: v for k, v in result.items() if k not in ("dev", "rss_timeline_mb")}
        print(json.dumps(shown, indent=1), flush=True)
    print(f"wrote {out}")


def _summarize(report: dict) -> None:
    """The top-level fields: the full pool's counts and faults, and the RSS ratio of 100 % over 10 %."""
    runs = report["fractions"]
    full, small = runs.get("f1"), runs.get("f0.1")
    if full:
        report |= {k: full[k] for k in ("pool_rows", "labeled", "rejected", "lost", "duplicated")}
        report["faults"] = [
            {"fault": "labeling actor killed", "injected": full["faults"].get("actor_killed"),
             "checked": "labeled + rejected = pool rows, no key twice",
             "holds": bool(full["faults"].get("actor_killed")) and full["exactly_once"]},
            {"fault": "labeling driver killed, rerun", "after_shards": full["faults"].get("driver_killed_after_shards"),
             "checked": "labeled + rejected = pool rows, no key twice; 10,000 labels rescored to 1e-5",
             "holds": full["exactly_once"] and full["scores_equal"]},
            {"fault": "training worker raised after step 300", "injected": bool(full["resumed_from_steps"]),
             "resumed_from_steps": full["resumed_from_steps"],
             "checked": "trained groups = steps × workers × groups per step, none twice",
             "holds": bool(full["resumed_from_steps"]) and full["group_count_exact"]},
        ]  # fmt: skip
    if full and small:
        ratios = {r: full["peak_rss_mb"][r] / small["peak_rss_mb"][r] for r in full["peak_rss_mb"]
                  if small["peak_rss_mb"].get(r)}  # fmt: skip
        report["rss_peak_ratio_by_role"] = {r: round(v, 3) for r, v in ratios.items()}
        report["rss_peak_ratio"] = round(max(ratios.values()), 3)


if __name__ == "__main__":
    main()
