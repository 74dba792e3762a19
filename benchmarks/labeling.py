"""Labeling throughput: a one-process transformers loop vs the labeling stage on Ray Data (1 and 2 actors) vs vLLM.

Every mode scores the same pool slice (the first N rows of ``--pool``, file order) with the same teacher, at each of
``--sizes`` (×10 apart, to show that memory stays flat):

- ``loop``: the loop a user writes first (``naive_loop``): one process, default torch threads, batches in file order,
  padded to the longest in each batch, ``torch.no_grad``;
- ``ray-transformers``: ``disranker.labeling.run`` with 1 and 2 actors (``--actors``), fractional CPUs, as the stage
  runs by default: shards of 2,000 rows read in 256-row parts (one actor call each), the rows of a call sorted by
  length, each query's prompt run once per call (``scoring.share_query_prompt``; ``--no-shared-prompt`` turns it off);
- ``ray-transformers-bf16``: the stage with the most actors and ``scoring.precision=bf16`` (bf16 weights, used only if
  the stage's own check finds them ranking like fp32: ``precision`` in the JSON says what ran); ``spearman_vs_loop``
  says how it ranks against the fp32 loop (every mode reports it, and its max |diff|). Use a trained teacher
  (``--teacher``): a seeded untrained head's scores lie too close together for bf16 to keep their order;
- ``ray-vllm``: the same with ``backend=vllm``, 1 actor; skipped, with the reason, where ``import vllm`` fails.

Each measurement runs in its own subprocess (no warm caches, no leftover Ray). pairs/s is end to end: for the loop,
read + load the model + score + write; for Ray, the stage's ``run()`` (actor start and model loading included) on a
Ray already up (``ray.init`` not counted, as on a cluster). Peak memory: of the whole process tree
(``process_peak``; dashboard off), sampled every ``--sample-s`` seconds. The load average at start and
end goes into the JSON: on a shared machine other jobs' load moves every number. The default teacher is the real
SmolLM2-135M with a seeded score head (as ``labeling.smoke`` does for the tiny model); ``--tiny`` for a quick check.

    python benchmarks/labeling.py --sizes 300 3000      # SmolLM2, ~30 min here; benchmarks/results/labeling.json
    python benchmarks/labeling.py --tiny --sizes 20 200 --out /tmp/labeling_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from disranker.labeling.pipeline import READ_CPUS  # what the stage keeps free for its read tasks
from labeling_loop import agreement_with_loop, naive_loop  # benchmarks/ is first on sys.path
from process_peak import measure, run_child  # benchmarks/ is the script's folder, first on sys.path

DEMO_POOL = "outputs/demo/corpus/pool.parquet"
RESULTS = Path(__file__).parent / "results" / "labeling.json"


def ray_stage(task: dict) -> dict:
    """The labeling stage, as a job would run it, on a fresh local Ray of ``--cpus`` CPUs."""
    import ray

    from disranker.labeling import LabelConfig, ScoringSection, TeacherSection, run
    from disranker.runtime import ScalingSection

    ray.init(num_cpus=task["cpus"], object_store_memory=500 * 1024**2, include_dashboard=False, log_to_driver=False)
    config = LabelConfig(
        pool=task["pool"],
        output_dir=task["output"],
        rows_per_shard=task["rows_per_shard"],
        teacher=TeacherSection(spec=task["teacher"], batch_size=task["batch_size"], max_length=task["max_length"]),
        scoring=ScoringSection(
            backend=task["backend"],
            torch_threads=task["torch_threads"],
            rows_per_call=task["rows_per_call"],
            share_query_prompt=task["share_query_prompt"],
            precision=task["precision"],
        ),
        scaling=ScalingSection(num_workers=task["actors"], cpus_per_worker=task["cpus_per_actor"]),
    )
    started = time.perf_counter()
    run(config)
    wall = time.perf_counter() - started
    metrics = json.loads(Path(task["output"], "disranker.json").read_text())["metrics"]
    ray.shutdown()
    return {
        "wall_s": wall,
        "stage_pairs_per_s": metrics["pairs_per_s"],
        "rejected": metrics["rejected"],
        "precision": metrics["precision"],  # what the driver's check decided (bf16 only if it ranks like fp32)
    }


def prepare_teacher(args: argparse.Namespace, workdir: Path) -> str:
    """A *ForSequenceClassification folder every mode loads: tiny, given as is, or a seeded head on a causal LM."""
    if args.tiny:
        from disranker.testing.tiny import build_tiny_scorer

        return build_tiny_scorer(workdir / "teacher")
    config = Path(args.teacher, "config.json")
    if config.exists() and any(
        a.endswith("ForSequenceClassification") for a in json.loads(config.read_text()).get("architectures") or []
    ):
        return args.teacher
    import torch

    from disranker.models.loading import load_teacher_scorer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a fixed head, so every mode and actor scores with the same weights
        model, tokenizer = load_teacher_scorer(args.teacher)
    model.save_pretrained(workdir / "teacher")
    tokenizer.save_pretrained(workdir / "teacher")
    return str(workdir / "teacher")


def vllm_skip_reason() -> str | None:
    """None when ``import vllm`` works in this interpreter, else the error it ends with."""
    probe = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    if probe.returncode == 0:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[-1] if lines else f"import vllm exited {probe.returncode}"


def run_size(size: int, args: argparse.Namespace, teacher: str, workdir: Path, vllm_reason: str | None) -> list[dict]:
    pool = workdir / f"pool-{size}.parquet"
    table = pq.read_table(args.pool)
    if table.num_rows < size:
        raise SystemExit(f"{args.pool} has {table.num_rows} rows; --sizes asks for {size}")
    pq.write_table(table.slice(0, size), pool)
    common = {"pool": str(pool), "teacher": teacher, "batch_size": args.batch_size, "max_length": args.max_length}
    cpus = len(os.sched_getaffinity(0))  # the cores this process may use (os.cpu_count ignores taskset)
    modes = [("loop", None, 0, "fp32")] + [("ray-transformers", "transformers", n, "fp32") for n in args.actors]
    modes += [("ray-transformers", "transformers", max(args.actors), "bf16"), ("ray-vllm", "vllm", 1, "fp32")]
    rows = []
    for mode, backend, actors, weights in modes:
        mode = f"{mode}-bf16" if weights == "bf16" else mode
        row = {"pairs": size, "mode": mode, "actors": actors or None}
        if backend == "vllm" and vllm_reason:
            print(f"  {mode}: skipped ({vllm_reason})", flush=True)
            rows.append({**row, "skipped": vllm_reason})
            continue
        name = f"{mode}-{actors}-{size}"
        task = {**common, "name": name, "mode": mode, "output": str(workdir / name)}
        if backend:
            # The stage's own shards (--rows-per-shard) and calls (--rows-per-call): it reads each shard in call-sized
            # parts, so every actor gets work even when the pool is one shard.
            task.update(
                backend=backend,
                actors=actors,
                cpus=cpus,
                rows_per_shard=args.rows_per_shard,
                rows_per_call=args.rows_per_call,
                share_query_prompt=not args.no_shared_prompt,
                precision=weights,
                cpus_per_actor=min(1.0, (cpus - READ_CPUS) / actors),
                torch_threads=max(1, cpus // actors),
            )
        else:
            task["output"] += ".parquet"
        row.update(measure(__file__, task, workdir, args.sample_s))
        row["pairs_per_s"] = round(size / row["wall_s"], 2)
        if backend:
            row.update(agreement_with_loop(rows[0]["output"], task["output"]))
        row["output"] = task["output"]
        row["ratio_to_loop"] = round(row["pairs_per_s"] / rows[0]["pairs_per_s"], 2) if rows else 1.0
        print(
            f"  {mode} actors={actors}: {row['pairs_per_s']} pairs/s, ×{row['ratio_to_loop']}, "
            f"peak {row['peak_rss_mb']} MB",
            flush=True,
        )
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'pairs':>6} {'mode':<22} {'actors':>6} {'pairs/s':>8} {'× loop':>7} {'peak RSS MB':>12} {'wall s':>7} "
          f"{'spearman':>9}")  # fmt: skip
    for r in rows:
        if "skipped" in r:
            print(f"{r['pairs']:>6} {r['mode']:<22} {'':>6} skipped: {r['skipped'][:70]}")
            continue
        print(
            f"{r['pairs']:>6} {r['mode']:<22} {r['actors'] or '-':>6} {r['pairs_per_s']:>8} "
            f"{r['ratio_to_loop']:>7} {r['peak_rss_mb']:>12} {r['wall_s']:>7.1f} "
            f"{r.get('spearman_vs_loop', 1.0):>9.5f}"
        )


def main(argv: list[str] | None = None) -> None:
    from disranker.labeling import LabelConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=DEMO_POOL, help="pool table; the first N rows are used (file order)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000], help="pairs per run (default ×10 apart)")
    parser.add_argument(
        "--teacher", default="packaged:smollm2", help="scorer folder, or a causal LM given a seeded head"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny teacher instead (a quick check)")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="scoring actors of the Ray runs")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass, all modes")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair, all modes")
    stage = LabelConfig()  # the stage's own defaults, so the benchmark measures what a user runs
    parser.add_argument("--rows-per-shard", type=int, default=stage.rows_per_shard, help="the stage's rows_per_shard")
    parser.add_argument(
        "--rows-per-call", type=int, default=stage.scoring.rows_per_call, help="the stage's scoring.rows_per_call"
    )
    parser.add_argument(
        "--no-shared-prompt", action="store_true", help="scoring.share_query_prompt=false: every pair runs whole"
    )
    parser.add_argument("--skip-vllm", action="store_true", help="skip the vLLM runs even where vllm imports")
    parser.add_argument("--sample-s", type=float, default=0.2, help="memory sampling interval")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not Path(args.pool).exists():
        raise SystemExit(f"no pool at {args.pool}: build it with `disranker data build-demo --size small`")

    load_start = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-labeling-") as tmp:
        workdir = Path(tmp)
        teacher = prepare_teacher(args, workdir)
        vllm_reason = "--skip-vllm" if args.skip_vllm else vllm_skip_reason()
        rows = []
        for size in args.sizes:
            print(f"{size} pairs:", flush=True)
            rows += run_size(size, args, teacher, workdir, vllm_reason)
    for row in rows:
        row.pop("output", None)
    print_table(rows)
    two = [r for r in rows if r["mode"] == "ray-transformers" and r["actors"] == 2]
    goal = {str(r["pairs"]): r["ratio_to_loop"] >= 1.7 for r in two}
    print(f"goal (2 actors ≥ 1.7× the loop) met per pool size: {goal}")
    report = {
        "command": " ".join(["python", "benchmarks/labeling.py", *(argv if argv is not None else sys.argv[1:])]),
        "teacher": "tiny" if args.tiny else args.teacher,
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "total_s": round(time.perf_counter() - started, 1),
        "memory": "peak of the summed RSS of the measurement's process tree (driver + Ray processes), psutil",
        "goal_2_actors_1_7x_loop": goal,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"written to {args.out}")


def child(task: dict) -> dict:
    return naive_loop(task) if task["mode"] == "loop" else ray_stage(task)


if __name__ == "__main__":  # the guard vLLM's spawned engine needs
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        run_child(sys.argv[2:], child)
    else:
        main()
