"""Teacher SFT training speed: packed query groups vs one padded row per document, fp32 vs bf16 autocast.

The real SmolLM2-135M scorer, the small demo corpus' train judgments, and the SFT stage's own batch code
(``teacher.data.query_groups`` → ``collate_groups`` or ``collate_groups_packed``, ``rank_loss``, AdamW with clipping):
every mode trains on the same query groups in the same order, from the same weights, in one process (torch-level, no
Ray: the worker's step is what is timed: forward, backward, clipping, AdamW). Per mode: training pairs (documents) per
second, token positions run per step (padding included), the matmul FLOPs of a step (counted from the shapes, see
``step_flops``) and the FLOP rate reached, and the loss of each step, the same across modes to rounding.

    python benchmarks/teacher_speed.py --groups-per-step 2 --group-size 16 --steps 6   # the docs' run

On a CUDA machine (``--device cuda``) the same modes run with bf16 autocast on the GPU. Where the weights cannot travel
(the lent GPU machine takes 64 MiB), ``--random-init`` trains a seeded random-weight model of the same architecture
and tokenizer instead: a step's speed and the packed/plain equality do not depend on the weights' values.
``--lora`` trains LoRA adapters (``models.lora`` defaults: r 16 on every projection) and the score head, as the SFT
stage's ``model.lora: {}`` does, to compare step time and peak GPU memory with full fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from disranker.data import demo, io
from disranker.models import precision
from disranker.models.loading import load_teacher_scorer
from disranker.models.lora import LoraSection, with_lora
from disranker.models.packing import PackedRows, packed_scores
from disranker.teacher import data
from disranker.teacher.config import TrainingSection
from disranker.teacher.losses import rank_loss

# layout-precision[-optimizer]: "plain-fp32-foreach" is the SFT step before packing (torch's default AdamW); the
# others use the fused AdamW the stage uses now, so each ratio to "plain-fp32" is packing's or bf16's own.
MODES = ("plain-fp32-foreach", "plain-fp32", "packed-fp32", "plain-bf16", "packed-bf16")


def batches(groups: list, tokenizer, layout: str, args, row_tokens: int) -> list[dict]:
    chunks = [groups[i : i + args.groups_per_step] for i in range(0, len(groups), args.groups_per_step)]
    if layout == "packed":
        return [data.collate_groups_packed(c, tokenizer, args.max_length, args.group_size, row_tokens) for c in chunks]
    return [data.collate_groups(c, tokenizer, args.max_length, args.group_size) for c in chunks]


def loss_of(model, batch: dict, mode_precision: str, device_type: str) -> torch.Tensor:
    with precision.autocast(mode_precision, device_type):
        if "eos_index" in batch:
            flat = packed_scores(model, model, PackedRows.from_batch(batch))
        else:
            flat = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    scores = data.scatter_scores(flat.float(), batch["slots"], tuple(batch["labels"].shape))
    return rank_loss("hinge", scores, batch["labels"], batch["mask"])


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def random_weight_twin(model_dir: str, out_dir: str) -> str:
    """A seeded random-weight causal LM of ``model_dir``'s architecture with its tokenizer (config and tokenizer files
    only are read), saved to ``out_dir`` so the stage's own loading code reads it."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir, local_files_only=True))
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(out_dir)
    return out_dir


def step_flops(model, batch: dict) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3× the forward): 2 per weight per token for the
    decoder's linear layers and the head, plus attention's QKᵀ and AV over the (query, key) pairs it computes: every
    pair of a padded row, or each packed bucket's padded segments (``models.segment_attention``). Embedding lookups
    are not matmuls and are left out."""
    config = model.config
    linear = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in name)
    rows, width = batch["input_ids"].shape
    if "segment_shapes" in batch:
        pairs = sum(n * queries * keys for n, queries, keys in batch["segment_shapes"].tolist())
    else:
        pairs = rows * width * width
    attention = 2 * 2 * config.num_hidden_layers * config.hidden_size * pairs
    return 3 * (2 * linear * rows * width + attention)


def run_mode(args, mode: str, groups: list, row_tokens: int | None = None) -> dict:
    layout, mode_precision, *optimizer_kind = mode.split("-")
    device = torch.device(args.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = load_teacher_scorer(args.model)
        if args.lora:
            model = with_lora(model, LoraSection(), scorer=True)
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the previous mode's model and optimizer are gone: measure this one's peak alone
        torch.cuda.reset_peak_memory_stats()
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, fused=optimizer_kind != ["foreach"])
    prepared = [to_device(batch, device) for batch in batches(groups, tokenizer, layout, args, row_tokens)]
    losses, seconds = [], []
    for i, batch in enumerate(prepared[: args.warmup + args.steps]):
        started = time.perf_counter()
        loss = loss_of(model, batch, mode_precision, device.type)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":  # kernels run asynchronously: the step ends when the GPU is done
            torch.cuda.synchronize()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - started)
            losses.append(loss.item())
    timed = prepared[args.warmup : args.warmup + args.steps]
    pairs = sum(int(b["mask"].sum()) for b in timed)
    tokens = sum(b["input_ids"].numel() for b in timed)
    flops = sum(step_flops(model, b) for b in timed)
    return {
        "mode": mode,
        "label": f"{mode} ≤{row_tokens}" if row_tokens else mode,  # packed: rows of at most row_tokens tokens
        "layout": layout,
        "row_tokens": row_tokens,
        "precision": mode_precision,
        "pairs_per_s": pairs / sum(seconds),
        "seconds_per_step": float(np.mean(seconds)),
        "tokens_per_step": tokens / len(timed),  # token positions run, padding included
        "gflop_per_step": flops / len(timed) / 1e9,
        "gflop_per_s": flops / sum(seconds) / 1e9,
        "losses": losses,
        "trainable_params": sum(p.numel() for p in trainable),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="outputs/demo/corpus", help="small demo corpus (built when missing)")
    parser.add_argument("--judgments", help="train judgments to read instead of the demo corpus' (no WordNet needed)")
    parser.add_argument("--model", default="packaged:smollm2")
    parser.add_argument("--random-init", action="store_true", help="a seeded random-weight twin of --model")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--groups-per-step", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument(
        "--row-tokens",
        type=int,
        nargs="+",
        default=[TrainingSection.pack_row_tokens],
        help="packed rows' token budget (the SFT stage's training.pack_row_tokens); several: each packed mode at each",
    )
    parser.add_argument("--steps", type=int, default=8, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters and the score head only")
    parser.add_argument("--out", default="benchmarks/results/teacher_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.random_init:
        args.twin_of, args.model = args.model, random_weight_twin(args.model, tempfile.mkdtemp(prefix="teacher-twin-"))
    if not args.judgments:
        corpus = demo.run(demo.DemoCorpusConfig(size="small", output_dir=args.corpus))
        args.judgments = io.join(corpus, "judgments", "train.parquet")
    train = io.read_table(args.judgments)
    n_groups = args.groups_per_step * (args.warmup + args.steps)
    groups, _ = data.query_groups(train, args.group_size, seed=0, max_queries=n_groups + 20)
    groups = groups[:n_groups]

    rows = []
    for mode in args.modes:
        for row_tokens in args.row_tokens if mode.startswith("packed") else [None]:
            rows.append(run_mode(args, mode, groups, row_tokens))
            print(f"{rows[-1]['label']}: {rows[-1]['pairs_per_s']:.2f} pairs/s", flush=True)
    by_mode = {r["mode"]: r for r in rows if r["layout"] == "plain"}
    print(f"\n{'mode':<23} {'pairs/s':>8} {'× before':>9} {'× plain':>8} {'s/step':>7} {'tokens':>7} {'GFLOP/s':>8}")
    for r in rows:
        for key, base in (("over_before", "plain-fp32-foreach"), ("over_plain_fp32", "plain-fp32")):
            r[key] = r["pairs_per_s"] / by_mode[base]["pairs_per_s"] if base in by_mode else None
        ratios = " ".join(f"{r[k]:>8.2f}" if r[k] else f"{'-':>8}" for k in ("over_before", "over_plain_fp32"))
        print(
            f"{r['label']:<23} {r['pairs_per_s']:>8.2f} {ratios} {r['seconds_per_step']:>7.2f} "
            f"{r['tokens_per_step']:>7.0f} {r['gflop_per_s']:>8.1f}"
        )
    for r in rows:  # packing must not change the loss: each step's difference from the plain layout's, same precision
        plain = by_mode.get(f"plain-{r['precision']}")
        diffs = [abs(a - b) for a, b in zip(r["losses"], plain["losses"], strict=True)] if plain else None
        r["max_loss_diff_vs_plain"] = max(diffs) if diffs else None
    result = {
        "settings": vars(args),
        "machine": {
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "cpu": precision.cpu_model(),
            "cpu_bf16_flags": list(precision.cpu_bf16_flags()),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "modes": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
