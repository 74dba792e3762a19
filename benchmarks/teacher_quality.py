"""Teacher quality: does CPT on clicks help the rank-loss SFT of the real SmolLM2-135M teacher?

Four rows on the test split of the small demo corpus (PNR, NDCG@10, MRR@10 with label 4 = the exact answer):

- ``bm25``: the lexical baseline (index over the whole test split, evaluated on the sampled queries);
- ``untrained_head``: ``load_teacher_scorer`` on the base model, i.e. a fresh random score layer (seeded);
- ``sft_no_cpt``: SFT from ``packaged:smollm2``;
- ``sft_with_cpt``: CPT on the clicks first, then SFT from the CPT folder.

Both stages run through ``disranker.teacher.train.run`` on Ray Train with configs from the stage YAML files plus
dotted overrides (the knobs below), so this exercises the real stage code, checkpoints and lineage included; a
finished stage is skipped on a rerun with the same settings. Each run is one epoch cut at ``--cpt-steps`` /
``--sft-steps`` optimizer steps. Test and dev are subsampled by query (seeded) because a 135 M decoder scores only a
few pairs per second on a small CPU; the dev sample is what SFT evaluates at the end of its epoch. Wall time per phase
and the machine (cores, torch threads, load average) go into the JSON beside the metrics.

    # the README's run (the demo pipeline's teacher settings; about 15 minutes on 2 cores):
    python benchmarks/teacher_quality.py --cpt-steps 20 --sft-steps 40 --group-size 8 --max-length 96 \
        --cpt-max-length 96 --test-queries 60 --dev-queries 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from disranker import lineage
from disranker.config import load_config
from disranker.data import demo, io
from disranker.evaluation.baselines import bm25_scores
from disranker.evaluation.metrics import evaluate_rankings
from disranker.evaluation.report import metrics_table
from disranker.models.loading import load_teacher_scorer, score_pairs_teacher
from disranker.pipeline.samples import sample_queries
from disranker.teacher import train
from disranker.teacher.config import TeacherConfig

BASE_MODEL = "packaged:smollm2"
MRR_MIN_LABEL = 4  # the demo corpus' exact answer
COLUMNS = ("pnr", "ndcg@10", "mrr@10", "n_queries", "n_preference_pairs")


def evaluate(table: pa.Table, scores: np.ndarray) -> dict:
    query_ids = np.asarray(table["query_id"].to_pylist(), dtype=object)
    return evaluate_rankings(query_ids, table["label"].to_numpy(), scores, mrr_min_label=MRR_MIN_LABEL)


def score_teacher(model_spec: str, table: pa.Table, max_length: int, batch_size: int) -> np.ndarray:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a folder without a trained score layer gets a fresh one: keep it reproducible
        model, tokenizer = load_teacher_scorer(model_spec)
    texts = [table[c].to_pylist() for c in ("query", "title", "summary")]
    return score_pairs_teacher(model, tokenizer, *texts, batch_size=batch_size, max_length=max_length)


def stage_overrides(args: argparse.Namespace, steps: int, max_length: int) -> list[str]:
    """Overrides shared by CPT and SFT: the step budget, scaling, one micro-batch per step, a warm-up of ~10 %."""
    return [
        "training.epochs=1",
        f"training.max_steps={steps}",
        f"training.max_length={max_length}",
        f"training.warmup_steps={max(1, steps // 10)}",
        "training.grad_accumulation=1",
        f"scaling.num_workers={args.workers}",
        f"scaling.cpus_per_worker={args.cpus_per_worker}",
        f"run.checkpoint_every_steps={steps + 1}",  # only the end-of-run checkpoints: each one writes ~1.6 GB here
    ]


def run_stage(config_path: str, overrides: list[str]) -> tuple[str, dict, float]:
    """Train one teacher stage; its output folder, the metrics its lineage recorded and the wall seconds."""
    config = load_config(TeacherConfig, config_path, overrides)
    started = time.perf_counter()
    folder = train.run(config)
    seconds = time.perf_counter() - started
    metrics = (lineage.read_lineage(folder) or {}).get("metrics", {})
    kept = {k: v for k, v in metrics.items() if k not in ("loss_curve", "dev")}
    return folder, kept | {"loss_history": [point["loss"] for point in metrics.get("loss_curve", [])]}, seconds


def absolute(path: str) -> str:
    """Ray Train workers run in their own working directory: the stages get absolute local paths."""
    return path if "://" in path else os.path.abspath(path)


def machine() -> dict:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="outputs/demo/corpus", help="small demo corpus (built when missing)")
    parser.add_argument("--cpt-config", default="jobs/configs/teacher_cpt.yaml")
    parser.add_argument("--sft-config", default="jobs/configs/teacher_sft.yaml")
    parser.add_argument("--work-dir", default="outputs/bench/teacher_quality", help="stage output folders")
    parser.add_argument("--cpt-steps", type=int, default=100, help="CPT optimizer steps")
    parser.add_argument("--sft-steps", type=int, default=150, help="SFT optimizer steps (each run)")
    parser.add_argument("--cpt-batch-size", type=int, default=8, help="CPT examples per worker and step")
    parser.add_argument("--sft-batch-size", type=int, default=1, help="SFT query groups per worker and step")
    parser.add_argument("--group-size", type=int, default=8, help="SFT docs per query group")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers")
    parser.add_argument(
        "--cpus-per-worker", type=float, default=1.75, help="CPUs per worker (⌈·⌉ torch threads; SFT leaves Ray 0.25)"
    )
    parser.add_argument("--max-length", type=int, default=128, help="tokens per teacher text")
    parser.add_argument("--cpt-max-length", type=int, default=128, help="CPT tokens (prompt + target: needs room)")
    parser.add_argument("--test-queries", type=int, default=200, help="test queries sampled (0: all)")
    parser.add_argument("--dev-queries", type=int, default=50, help="dev queries SFT evaluates (0: all)")
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="query sampling seed")
    parser.add_argument("--out", default="benchmarks/results/teacher_quality.json")
    args = parser.parse_args(argv)

    phases: dict[str, float] = {}
    started = time.perf_counter()
    info = machine()

    corpus = absolute(demo.run(demo.DemoCorpusConfig(size="small", output_dir=args.corpus)))
    args.work_dir = absolute(args.work_dir)
    phases["corpus"] = time.perf_counter() - started
    full_test = io.read_table(io.join(corpus, "judgments", "test.parquet"))
    test = sample_queries(full_test, args.test_queries or None, args.seed)
    full_dev = io.read_table(io.join(corpus, "judgments", "dev.parquet"))
    dev = sample_queries(full_dev, args.dev_queries or None, args.seed)
    dev_path = io.write_table(dev, io.join(args.work_dir, f"dev_{args.dev_queries}q_seed{args.seed}.parquet"))
    print(f"test: {test.num_rows} pairs / {args.test_queries or 'all'} queries; dev: {dev.num_rows} pairs", flush=True)

    rows: dict[str, dict] = {}
    tick = time.perf_counter()
    bm25 = bm25_scores(full_test).to_pydict()  # IDF over the whole test split, as the baselines stage does
    by_pair = dict(zip(zip(bm25["query_id"], bm25["doc_id"], strict=True), bm25["score"], strict=True))
    pairs = zip(test["query_id"].to_pylist(), test["doc_id"].to_pylist(), strict=True)
    rows["bm25"] = evaluate(test, np.array([by_pair[p] for p in pairs], dtype=np.float32))
    phases["bm25"] = time.perf_counter() - tick

    def score_row(name: str, spec: str) -> None:
        tick = time.perf_counter()
        rows[name] = evaluate(test, score_teacher(spec, test, args.max_length, args.eval_batch_size))
        phases[f"score_{name}"] = time.perf_counter() - tick
        print(f"{name}: ndcg@10={rows[name]['ndcg@10']:.4f} ({phases[f'score_{name}']:.0f} s to score)", flush=True)

    score_row("untrained_head", BASE_MODEL)

    data = [f"data.train={io.join(corpus, 'judgments', 'train.parquet')}", f"data.dev={dev_path}"]
    sft_common = [
        *stage_overrides(args, args.sft_steps, args.max_length),
        *data,
        f"training.batch_size={args.sft_batch_size}",
        f"training.group_size={args.group_size}",
        f"training.eval_batch_size={args.eval_batch_size}",
    ]
    cpt_overrides = [
        *stage_overrides(args, args.cpt_steps, args.cpt_max_length),
        f"output_dir={io.join(args.work_dir, 'cpt')}",
        f"model.spec={BASE_MODEL}",
        f"data.clicks={io.join(corpus, 'clicks.parquet')}",
        f"training.batch_size={args.cpt_batch_size}",
    ]
    stages: dict[str, dict] = {}
    for name, config_path, overrides in (
        ("sft_no_cpt", args.sft_config, [*sft_common, f"output_dir={io.join(args.work_dir, 'sft_no_cpt')}",
                                         f"model.spec={BASE_MODEL}"]),
        ("cpt", args.cpt_config, cpt_overrides),
        ("sft_with_cpt", args.sft_config, [*sft_common, f"output_dir={io.join(args.work_dir, 'sft_with_cpt')}",
                                           f"model.spec={io.join(args.work_dir, 'cpt')}"]),
    ):  # fmt: skip
        folder, metrics, seconds = run_stage(config_path, overrides)
        phases[f"train_{name}"] = seconds
        steps = args.cpt_steps if name == "cpt" else args.sft_steps
        stages[name] = {"folder": folder, "overrides": overrides, "seconds_per_step": seconds / steps, **metrics}
        print(f"{name}: {steps} steps in {seconds:.0f} s, loss {metrics.get('first_loss')} -> "
              f"{metrics.get('last_loss')}", flush=True)  # fmt: skip
        if name != "cpt":
            score_row(name, folder)

    phases["total"] = time.perf_counter() - started
    info["load_average_at_end"] = os.getloadavg()
    table = metrics_table(rows, COLUMNS)
    result = {
        "args": vars(args),
        "test_split": {"queries": len(set(test["query_id"].to_pylist())), "pairs": test.num_rows},
        "dev_sample": {"path": dev_path, "pairs": dev.num_rows},
        "metrics": rows,
        "stages": stages,
        "wall_seconds": {k: round(v, 1) for k, v in phases.items()},
        "machine": info,
        "table": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    print(f"wall seconds: {json.dumps(result['wall_seconds'])}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
