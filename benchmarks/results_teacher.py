"""docs/results.md's sections on the teacher: SFT training speed on the CPU and on a CUDA GPU, LoRA vs full SFT."""

from __future__ import annotations


def teacher_speed(data: dict) -> list[str]:
    lines = [
        "## Teacher SFT training speed (`benchmarks/teacher_speed.py`)",
        "",
        *_speed_table(data),
    ]
    fp32_losses = {tuple(round(x, 4) for x in r["losses"]) for r in data["modes"] if r["precision"] == "fp32"}
    lines += ["", f"The fp32 modes' per-step losses agree to 4 decimals: {len(fp32_losses) == 1}."]
    return lines


def gpu_checks(data: dict) -> list[str]:
    """The lent CUDA machine's run of `benchmarks/gpu_checks.sh`: tests/gpu, then the SFT step speed on the GPU."""
    passed = sum(t["outcome"] == "passed" for t in data["tests"])
    lines = [
        "## On a CUDA GPU (`benchmarks/gpu_checks.sh`)",
        "",
        f"{data['device']} (driver {data['driver']}), torch {data['torch']}, transformers {data['transformers']}: "
        f"tests/gpu {passed} of {len(data['tests'])} passed; left out: {'; '.join(data['left_out'])}.",
    ]
    for speed in data["speed"]:
        worst = max(r["max_loss_diff_vs_plain"] for r in speed["modes"] if r["precision"] == "fp32")
        lines += ["", f"### {speed['settings']['groups_per_step']} query groups per step", ""]
        lines += _speed_table(speed)
        lines += ["", f"Packed vs plain, fp32: largest per-step loss difference {worst:.1e}."]
    return lines


def _speed_table(data: dict) -> list[str]:
    s, m = data["settings"], data["machine"]
    cuda = m.get("device", "cpu") != "cpu"
    model = "SmolLM2-135M's architecture with seeded random weights" if s.get("twin_of") else "SmolLM2-135M scorer"
    where = m["device"] if cuda else f"{m['torch_threads']} torch threads on {m['cpu']}"
    flags = "" if cuda else f" (bf16 flags: {', '.join(m['cpu_bf16_flags']) or 'none'})"
    lines = [
        f"{model}, {s['groups_per_step']} query groups × {s['group_size']} documents per step (demo train "
        f"judgments, max_length {s['max_length']}), {s['steps']} timed steps after {s['warmup']} warm-up, "
        f"{where}{flags}, torch {m['torch']}, "
        "one run; every mode trains on the same groups from the same weights. `plain-fp32-foreach` is the SFT step "
        "before this change (one padded row per document, torch's default AdamW); the other modes use the stage's "
        "fused AdamW, so `× plain` is packing's or bf16's own factor; `≤N`: packed rows of at most N tokens. FLOPs "
        "are counted from the shapes, attention over the pairs it computes (a padded row's every pair; packed: each "
        "document over its prompt and itself, padded per bucket).",
        "",
        "| mode | pairs/s | × before | × plain fp32 | s/step | tokens/step | GFLOP/s | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["modes"]:
        before = f"{r['over_before']:.2f}" if r.get("over_before") else "-"
        plain = f"{r['over_plain_fp32']:.2f}" if r.get("over_plain_fp32") else "-"
        peak = f"{r['peak_gpu_mib']:,.0f}" if r.get("peak_gpu_mib") else "-"
        name = r.get("label", r["mode"])  # records before row budgets were compared have no label
        lines.append(
            f"| {name} | {r['pairs_per_s']:.2f} | {before} | {plain} | {r['seconds_per_step']:.2f} | "
            f"{r['tokens_per_step']:.0f} | {r['gflop_per_s']:.0f} | {peak} |"
        )
    return lines


def teacher_lora(data: dict) -> list[str]:
    full, lora = data["runs"]
    ratio = data["lora_over_full"]
    lines = [
        "## LoRA teacher (`benchmarks/teacher_lora.py`)",
        "",
        f"The demo run's SFT config (`{data['sft_config_from']}`), the same steps, full fine-tuning against LoRA "
        f"(r {lora['lora']['r']}, alpha {lora['lora']['alpha']}, dropout {lora['lora']['dropout']}, on "
        f"{', '.join(lora['lora']['target_modules'])}; the score head in full; lr {lora['lr']} vs {full['lr']}). "
        f"Load average at the end {data['loadavg_end'][0]:.1f}.",
        "",
        "| mode | trainable parameters | s / step | train worker peak RSS MiB | dev NDCG@10 (best epoch) | last loss |",
        "|---|---|---|---|---|---|",
    ]
    for r in (full, lora):
        peak, best = r["peak_rss_mb"]["train worker"], r["dev_best"]["ndcg@10"]
        lines.append(f"| {r['mode']} | {r['trainable_params']:,} of {r['total_params']:,} | {r['s_per_step']:.2f} | "
                     f"{peak:,} | {best:.4f} | {r['last_loss']:.3f} |")  # fmt: skip
    lines += ["", f"LoRA / full: {ratio['s_per_step']:.2f}× the time per step, {ratio['worker_peak_rss']:.2f}× the "
              f"worker's peak memory, {ratio['trainable_params']:.4f}× the trainable parameters. "
              f"{data.get('context', '')}"]  # fmt: skip
    return lines


def teacher_lora_cuda(data: dict) -> list[str]:
    lines = [
        "## LoRA teacher SFT step on CUDA (`benchmarks/teacher_speed.py --device cuda --lora`)",
        "",
        f"{data['machine']['device']}, torch {data['machine']['torch']}; {data['settings']['groups_per_step']} query "
        f"groups of {data['settings']['group_size']} documents per step, {data['settings']['steps']} timed steps after "
        f"{data['settings']['warmup']}. {data['context']}",
        "",
        "| mode | full: pairs/s | LoRA: pairs/s | LoRA / full speed | full: peak GPU MiB | LoRA: peak GPU MiB |",
        "|---|---|---|---|---|---|",
    ]
    for full, lora in zip(data["full"], data["lora"], strict=True):
        lines.append(f"| {full['mode']} | {full['pairs_per_s']:,.0f} | {lora['pairs_per_s']:,.0f} | "
                     f"{lora['pairs_per_s'] / full['pairs_per_s']:.2f} | {full['peak_gpu_mib']:,.0f} | "
                     f"{lora['peak_gpu_mib']:,.0f} |")  # fmt: skip
    trainable = data["lora"][0]["trainable_params"], data["full"][0]["trainable_params"]
    lines += ["", f"Trainable parameters: {trainable[0]:,} of {trainable[1]:,} ({trainable[0] / trainable[1]:.1%}). "
              "At 135 M parameters the activations, not the weights and their optimizer state, fill the GPU, so LoRA "
              "saves no memory here; its speed against full fine-tuning differs by mode in this one run (slower "
              "packed in fp32, even plain, faster packed in bf16, where the full step was far slower than in the "
              "speed runs above), not profiled. Its case is a 7B-class teacher, whose full fine-tuning state does "
              "not fit."]  # fmt: skip
    return lines
