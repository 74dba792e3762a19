"""Where a teacher SFT step's time goes on CUDA: fp32 vs bf16 autocast, plain vs packed (torch.profiler, 3 steps).

Prints per mode the wall time per step, the GPU's busy time per step, the device operations per step and the top
kernels. Run by ``gpu_checks.sh run`` after the speed table; the settings are ``teacher_speed.py``'s at 8 groups per
step, on a seeded random-weight twin of ``--model`` (config and tokenizer only travel to the GPU machine).

    python benchmarks/gpu_step_profile.py --model .gpu/smollm2 --judgments .gpu/train.parquet
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import teacher_speed  # benchmarks/ is the script's folder, first on sys.path
from disranker.data import io
from disranker.models.loading import load_teacher_scorer
from disranker.teacher import data

MODES = ("plain-fp32", "plain-bf16", "packed-bf16", "packed-fp32")


def profile_mode(mode: str, model_dir: str, groups: list, args) -> None:
    layout, precision = mode.split("-")
    torch.manual_seed(0)
    model, tokenizer = load_teacher_scorer(model_dir)
    model.cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
    prepared = teacher_speed.batches(groups, tokenizer, layout, args, args.row_tokens)
    batches = [teacher_speed.to_device(b, torch.device("cuda")) for b in prepared]

    def step(batch: dict) -> None:
        teacher_speed.loss_of(model, batch, precision, "cuda").backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:2]:  # warm-up
        step(batch)
    torch.cuda.synchronize()
    started = time.perf_counter()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for batch in batches[2:5]:
            step(batch)
        torch.cuda.synchronize()
    wall = (time.perf_counter() - started) / 3
    events = prof.key_averages()
    busy = sum(e.self_device_time_total for e in events) / 3 / 1e3
    ops = sum(e.count for e in events if e.self_device_time_total > 0) / 3
    print(
        f"== {mode}: wall {wall * 1e3:.0f} ms/step (profiled), GPU busy {busy:.0f} ms/step, ~{ops:.0f} device ops/step"
    )
    print(events.table(sort_by="self_device_time_total", row_limit=8, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a folder with the teacher's config and tokenizer")
    parser.add_argument("--judgments", required=True, help="train judgments (the demo corpus' train split)")
    parser.add_argument("--groups-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--row-tokens", type=int, default=512)
    args = parser.parse_args()
    model_dir = teacher_speed.random_weight_twin(args.model, tempfile.mkdtemp(prefix="teacher-twin-"))
    groups, _ = data.query_groups(io.read_table(args.judgments), args.group_size, seed=0, max_queries=60)
    for mode in MODES:
        profile_mode(mode, model_dir, groups[: 5 * args.groups_per_step], args)


if __name__ == "__main__":
    main()
