"""Cluster sizing on paper: labeling the paper's 59 M pairs with a 7B-class teacher on N GPUs with vLLM.

Measured on this machine (the inputs):
- a finished demo run's labeling record (``<demo-dir>/label/disranker.json``): pairs/s of the SmolLM2-135M teacher,
  its precision and settings;
- the tokens the teacher reads per pair of that pool (its own tokenizer, truncated as scored), and the share of them
  that is the query prompt, read once per query when ``scoring.share_query_prompt`` is on;
- the bf16 matmul rate of this CPU (2048³, the labeling's threads), the ceiling the labeling is measured against.
From those: FLOP per pair (2 · non-embedding parameters · tokens read: a decoder's forward; the score head is one
row, and attention over ≤ 256 positions adds under 5 % at these widths) and the share of the matmul ceiling the
labeling reached.

Assumed (in the JSON and the table): the 7B-class teacher has 6.5 B non-embedding parameters (Qwen2.5-7B),
a web pair is 256 tokens (query + title + summary, as in the paper; longer than the demo's) with no prompt
sharing (vLLM's prefix cache shares whole 16-token blocks only); GPU bf16 dense peaks from the vendors' data sheets;
vLLM's pooling runner reaches a model-FLOP utilisation of 0.35 (prefill-only, batched: matmul-bound), with 0.2 and
0.5 given as the range. Hours = pairs · FLOP per pair / (GPUs · peak · utilisation).

    python benchmarks/cluster_sizing.py --demo-dir outputs/demo_run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from disranker import lineage
from disranker.data import io
from disranker.models.loading import load_teacher_scorer
from disranker.models.text import cpt_prompt, encode_teacher

PAPER_PAIRS = 59_000_000
TEACHER_7B_PARAMS = 6.5e9  # non-embedding parameters of Qwen2.5-7B
WEB_PAIR_TOKENS = 256
GPU_BF16_PEAK = {"L4": 121e12, "A100": 312e12, "H100 SXM": 989e12}  # dense, vendors' data sheets
UTILISATION = {"low": 0.2, "assumed": 0.35, "high": 0.5}
GPU_COUNTS = (1, 8, 64)
SHARD_SECONDS = 120  # a shard is what one actor redoes after a crash: about two minutes of work


def matmul_rate(threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """bf16 FLOP/s of one size³ matmul on this CPU with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    a, b = (torch.randn(size, size, dtype=torch.bfloat16) for _ in range(2))
    a @ b
    started, runs = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started)


def measured(demo_dir: str) -> dict:
    record = lineage.read_lineage(io.join(demo_dir, "label"))
    config, metrics = record["config"], record["metrics"]
    pool = io.read_table(config["pool"], columns=["query_id", "query", "title", "summary"])
    model, tokenizer = load_teacher_scorer(config["teacher"]["spec"])
    ids = encode_teacher(tokenizer, pool["query"].to_pylist(), pool["title"].to_pylist(),
                         pool["summary"].to_pylist(), config["teacher"]["max_length"])["input_ids"]  # fmt: skip
    prompt = [len(tokenizer(cpt_prompt(q))["input_ids"]) for q in pool["query"].to_pylist()]
    tokens, prompt = np.array([len(row) for row in ids], dtype=float), np.array(prompt, dtype=float)
    docs_per_query = pool.num_rows / len(set(pool["query_id"].to_pylist()))
    read = tokens - prompt * (1 - 1 / docs_per_query) if config["scoring"]["share_query_prompt"] else tokens
    embedding = model.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in model.parameters()) - embedding
    flop_per_pair = 2 * params * float(read.mean())
    actors, cpus = config["scaling"]["num_workers"], config["scaling"]["cpus_per_worker"]
    threads = actors * config["scoring"]["torch_threads"]
    ceiling = matmul_rate(threads)
    achieved = metrics["pairs_per_s"] * flop_per_pair
    return {
        "teacher": config["teacher"]["spec"], "precision": metrics["precision"]["used"],
        "actors": actors, "cpus_per_actor": cpus, "torch_threads_total": threads,
        "pairs": metrics["labeled"], "pairs_per_s": metrics["pairs_per_s"],
        "tokens_per_pair": float(tokens.mean()), "prompt_tokens_per_pair": float(prompt.mean()),
        "docs_per_query": docs_per_query, "tokens_read_per_pair": float(read.mean()),
        "non_embedding_params": params, "flop_per_pair": flop_per_pair,
        "achieved_flop_s": achieved, "matmul_bf16_flop_s": ceiling, "share_of_matmul_rate": achieved / ceiling,
        "loadavg": os.getloadavg(),
    }  # fmt: skip


def projection() -> dict:
    flop_per_pair = 2 * TEACHER_7B_PARAMS * WEB_PAIR_TOKENS
    rows = []
    for gpu, peak in GPU_BF16_PEAK.items():
        per_gpu_pairs_s = peak * UTILISATION["assumed"] / flop_per_pair
        for n in GPU_COUNTS:
            hours = {k: PAPER_PAIRS * flop_per_pair / (n * peak * u) / 3600 for k, u in UTILISATION.items()}
            rows.append({"gpu": gpu, "gpus": n, "pairs_per_s": n * per_gpu_pairs_s, "hours": hours,
                         "settings": {"scaling.num_workers": n, "scaling.use_gpu": True, "scoring.backend": "vllm",
                                      "scoring.rows_per_call": 512,
                                      "rows_per_shard": int(round(per_gpu_pairs_s * SHARD_SECONDS, -3))}})  # fmt: skip
    return {
        "pairs": PAPER_PAIRS,
        "non_embedding_params": TEACHER_7B_PARAMS,
        "tokens_per_pair": WEB_PAIR_TOKENS,
        "flop_per_pair": flop_per_pair,
        "utilisation": UTILISATION,
        "gpu_bf16_peak": GPU_BF16_PEAK,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="outputs/demo_run", help="a finished demo run (its label/ record)")
    parser.add_argument("--out", default="benchmarks/results/cluster_sizing.json")
    args = parser.parse_args(argv)
    result = {"measured": measured(io.absolute(args.demo_dir)), "projection": projection()}
    m = result["measured"]
    print(f"measured: {m['pairs_per_s']:.1f} pairs/s, {m['tokens_read_per_pair']:.1f} tokens read per pair, "
          f"{m['achieved_flop_s'] / 1e9:.1f} GFLOP/s = {100 * m['share_of_matmul_rate']:.0f} % of the "
          f"{m['matmul_bf16_flop_s'] / 1e9:.0f} GFLOP/s bf16 matmul rate")  # fmt: skip
    print(f"{'GPU':<10} {'GPUs':>4} {'pairs/s':>9} {'hours (0.2 / 0.35 / 0.5 utilisation)':>38}")
    for row in result["projection"]["rows"]:
        h = row["hours"]
        print(f"{row['gpu']:<10} {row['gpus']:>4} {row['pairs_per_s']:>9.0f} "
              f"{h['low']:>12.1f} / {h['assumed']:.1f} / {h['high']:.1f}")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
