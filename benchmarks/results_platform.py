"""docs/results.md sections on the platform's speed and robustness: labeling throughput, serving load, the ONNX
runtimes' agreement with torch, and the injected faults (``benchmarks/results_doc.py`` assembles the page)."""

from __future__ import annotations


def labeling(data: dict) -> list[str]:
    lines = [
        "## Labeling throughput (`benchmarks/labeling.py`)",
        "",
        f"`{data['command']}`, teacher {data['teacher']}, {data['cpus']} CPUs, {data['total_s']:.0f} s in all (load "
        f"average {data['loadavg_start'][0]:.1f} at start, {data['loadavg_end'][0]:.1f} at the end); every mode scores "
        f"the same pool slice, pairs/s end to end (model load and actor start included); memory: {data['memory']}.",
        "",
        "| pairs | mode | actors | pairs/s | × loop | peak RSS MB | wall s | precision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        used = (r.get("precision") or {}).get("used", "fp32")
        lines.append(
            f"| {r['pairs']} | {r['mode']} | {r['actors'] or '-'} | {r['pairs_per_s']:.2f} | {r['ratio_to_loop']:.2f} |"
            f" {r['peak_rss_mb']} | {r['wall_s']:.1f} | {used} |"
        )
    goal = ", ".join(f"{n} pairs: {'met' if ok else 'not met'}" for n, ok in data["goal_2_actors_1_7x_loop"].items())
    return lines + ["", f"Goal, 2 actors ≥ 1.7× the loop: {goal}.", "", *LABELING_NOTES]


# Why the stage is faster than the loop: measured by hand when each change landed (not by the script above).
LABELING_NOTES = [
    "Where the speed comes from, on the demo pool: each query's prompt runs once and its key/value cache serves all of "
    "the query's documents (`scoring.share_query_prompt`; the prompt is 16.5 of 39.7 tokens on average, 16 documents "
    "per query; 256 rows in one process, 1 thread: 30 s against 45 s, scores equal to 5e-6); rows are length-sorted "
    "within a call (5,000 rows, batch 32: 231k tokens against the loop's 346k); each shard is read in parts of one "
    "actor call, so every actor gets work (a 2,000-row shard read as one block kept the second actor idle). Two "
    "actors loading the model at once cost ~20 s of start-up, which 300 pairs do not pay back. Memory follows the "
    "longest batch, not the number of rows.",
]


def serve_load(data: dict) -> list[str]:
    a, runtimes = data["args"], data["runtimes"]
    lines = [
        "## Serving: the endpoint's runtimes against sentence-transformers (`benchmarks/serve_load.py`)",
        "",
        f"Model `{a['model']}`; {a['requests']} requests of {a['docs']} documents from `{a['judgments']}` (real demo "
        f"test queries), at concurrency {', '.join(map(str, a['concurrency']))}; one model replica (batches of up to "
        f"{a['max_batch_size']} pairs gathered for up to {a.get('batch_wait_timeout_s', 0.01) * 1000:g} ms, forwards "
        f"of {a['forward_batch_size']}) and every anchor on {a['threads']} "
        f"threads, max_length {a['max_length']}; {data['cpu']}. pairs/s: the endpoint's best level, "
        "sentence-transformers' `predict` over all pairs at batch 32 (no HTTP); p50 / p99: one request at a time. "
        "Agreement with torch fp32 on the same requests; gate: Spearman ≥ 0.99, top-10 ≥ 0.95 and, for the endpoint, "
        "its replica serving the runtime after its own check on the dev split.",
        "",
        "| runtime | pairs/s | × CrossEncoder | × best ST backend | p50 ms | p99 ms | Spearman | top-10 | gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runtimes.items():
        if "pairs_per_s" not in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | | | | |")
            continue
        label = f"endpoint `{name}`" if r["kind"] == "endpoint" else f"sentence-transformers `{name[3:]}`"
        gate = "passed" if r["gate_passed"] else "**failed**"
        lines.append(
            f"| {label} | {r['pairs_per_s']:.0f} | {r['over_crossencoder']:.2f} | {r['over_best_st_backend']:.2f} | "
            f"{r['request_p50_ms']:.0f} | {r['request_p99_ms']:.0f} | {r['spearman']:.4f} | {r['top10']:.3f} | {gate} |"
        )
    passed = {n: r for n, r in runtimes.items() if r.get("kind") == "endpoint" and r.get("gate_passed")}
    if passed:
        name, best = max(passed.items(), key=lambda item: item[1]["pairs_per_s"])
        met = best["over_crossencoder"] >= 2 and best["over_best_st_backend"] >= 1
        lines += [
            "",
            f"Goal, the best endpoint runtime that passes the gate ≥ 2× CrossEncoder and ≥ 1× the best "
            f"sentence-transformers backend (`{data['best_st_backend'][3:]}`): `{name}` at "
            f"{best['over_crossencoder']:.2f}× and {best['over_best_st_backend']:.2f}×: {'met' if met else 'not met'}.",
            "",
            "Where one request's time goes (median ms in one process, the rest of the endpoint's p50 after):",
            "",
            "| runtime | " + " | ".join(best["breakdown"]) + " |",
            "|---|" + "---|" * len(best["breakdown"]),
        ]
        for n, r in runtimes.items():
            if "breakdown" in r:
                lines.append(f"| {n} | " + " | ".join(f"{ms:.0f}" for ms in r["breakdown"].values()) + " |")
        lines += _cpu_by_role(runtimes)
    return lines


def _cpu_by_role(runtimes: dict) -> list[str]:
    """Where the cores went at each endpoint runtime's best level: CPU ms per request of each process role."""
    best = {n: r for n, r in runtimes.items() if r.get("kind") == "endpoint"}
    levels = {n: next(lv for lv in r["levels"] if lv["concurrency"] == r["best_concurrency"]) for n, r in best.items()}
    levels = {n: lv for n, lv in levels.items() if "cpu_ms_per_request" in lv}
    if not levels:
        return []
    roles = ["model replica", "ingress", "HTTP proxy", "Ray's own", "load client"]
    lines = [
        "",
        "Where the cores went at each runtime's best level (CPU ms per request, by process; the load client is the "
        "benchmark's own HTTP client):",
        "",
        "| runtime | concurrency | " + " | ".join(roles) + " | total |",
        "|---|---|" + "---|" * (len(roles) + 1),
    ]
    for name, level in levels.items():
        cpu = level["cpu_ms_per_request"]
        cells = " | ".join(f"{cpu.get(role, 0.0):.0f}" for role in roles)
        lines.append(f"| {name} | {level['concurrency']} | {cells} | {sum(cpu.values()):.0f} |")
    return lines


def onnx_agreement(data: dict) -> list[str]:
    a = data["args"]
    lines = [
        "## ONNX runtimes against torch (`benchmarks/onnx_agreement.py`)",
        "",
        f"The first {a['queries']} queries of `{a['test']}` ({data['pairs']} pairs), {a['threads']} threads, batch "
        f"{a['batch_size']}, max_length {a['max_length']}, best of {a['repeats']}; agreement with the same model in "
        "torch fp32; the default check is the endpoint's (Spearman ≥ 0.99 and top-10 ≥ 0.9, else torch is served).",
        "",
        "| model | runtime | pairs/s | × torch | Spearman | top-10 | NDCG@10 | default check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in data["results"]:
        torch_speed = result["runtimes"]["torch"]["pairs_per_s"]
        for name, r in result["runtimes"].items():
            if name == "torch":
                continue
            agreement = r["agreement"]
            lines.append(
                f"| {result['model']} | {name} | {r['pairs_per_s']:.1f} | {r['pairs_per_s'] / torch_speed:.2f} | "
                f"{agreement['spearman']:.4f} | {agreement['top10_agreement']:.3f} | {r['ndcg@10']:.4f} | "
                f"{'pass' if r['passes_default_check'] else '**fail**: torch is served'} |"
            )
    return lines


def faults(data: dict) -> list[str]:
    runs = "; ".join(f"{part}: `{command.strip()}` (load {data['loadavg'][part]:.1f})"
                     for part, command in data["commands"].items())  # fmt: skip
    lines = ["## Faults injected (`benchmarks/faults.py`)", "", f"Runs: {runs}.", ""]
    if "overload" in data:
        o, k = data["overload"], data["replica_kill"]
        lines += [
            f"- **Overload**: one replica sustaining {o['capacity_rps']} requests/s was offered {o['offered_rps']}/s "
            f"for {o['seconds']:.0f} s: {o['sent']} sent, {o['answered']} answered (p99 {o['p99_answered_s']} s), "
            f"{o['rejected_503']} refused with 503 (Retry-After {', '.join(o['retry_after_on_503']) or 'none'}, the "
            f"slowest refusal {o['max_503_s']} s), {o['other_5xx']} other 5xx, {o['failed_connections']} failed "
            "connections.",
            f"- **Replica killed** under steady load: {k['requests']} requests, {k['failed']} failed "
            f"(statuses {k['failed_statuses']}), answered again {k['seconds_to_recover']} s after the kill.",
        ]
    if "labeling" in data:
        lab = data["labeling"]
        rows = [("scoring actor killed", lab["actor_killed"]), ("driver SIGKILLed, rerun", lab["driver_killed"]),
                ("scorer failing transiently, first run", lab["transient_scorer"]["first_run"]),
                ("scorer failing transiently, after the rerun", lab["transient_scorer"]["after_rerun"])]  # fmt: skip
        lines += [
            "",
            "| labeling fault | pool rows | lost | duplicated | rejected by the scorer |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {r['rows']} | {r['lost']} | {r['duplicated']} | {r['scorer_rejected']} |" for name, r in rows
        ]
    if "teacher_kill" in data:
        t = data["teacher_kill"]
        lines += [
            "",
            f"- **Teacher SFT worker killed** after step 6: resumed from step {t['resumed_from_step']}, finished "
            f"{t['steps']} steps; the largest weight difference from the uninterrupted run on the same seed is "
            f"{t['max_abs_weight_diff']:.2e}, per-step losses equal: {t['same_losses']}.",
        ]
    return lines


def scale(data: dict) -> list[str]:
    lines = ["## The full pool through labeling and distillation (`benchmarks/scale.py`)", "",
             f"Teacher: {data['teacher']}; student: the tiny BERT of `testing/tiny.py`; CPU: {data['cpu']}.", "",
             "| pool fraction | pool rows | labeling rows/s | distillation rows/s | lost | duplicated | "
             "rescored labels equal | groups trained / expected | peak RSS MiB by role |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, run in data["fractions"].items():
        peaks = ", ".join(f"{role} {mb}" for role, mb in run["peak_rss_mb"].items())
        lines.append(
            f"| {name[1:]} | {run['pool_rows']:,} | {run['rows_per_s']['label']:,.0f} | "
            f"{run['rows_per_s']['distill']:,.0f} | {run['lost']} | {run['duplicated']} | {run['scores_equal']} "
            f"(max diff {run['rescore_max_abs_diff']:.1e}) | {run['groups_trained']:,} / {run['groups_expected']:,} | "
            f"{peaks} |"
        )
    if "f1" not in data["fractions"]:
        lines += ["", "The 100 % run has not finished yet: no RSS ratio; the faults are injected at full size only."]
    if "rss_peak_ratio" in data:
        by_role = ", ".join(f"{r} {v}" for r, v in data["rss_peak_ratio_by_role"].items())
        lines += ["", f"Peak RSS at 100 % over 10 % of the pool, worst role: {data['rss_peak_ratio']} ({by_role}); "
                  "goal ≤ 1.25."]  # fmt: skip
    for fault in data.get("faults", []):
        details = ", ".join(f"{k} {v}" for k, v in fault.items() if k not in ("fault", "checked", "holds"))
        verdict = "holds" if fault["holds"] else "FAILS"
        lines.append(f"- **{fault['fault']}** ({details}): {fault['checked']}: {verdict}")
    return lines


def cluster_sizing(data: dict) -> list[str]:
    m, p = data["measured"], data["projection"]
    u = p["utilisation"]
    lines = [
        "## Cluster sizing on paper (`benchmarks/cluster_sizing.py`)",
        "",
        f"Measured here: the demo's labeling (its SFT teacher, {m['non_embedding_params'] / 1e6:.0f} M non-embedding "
        f"parameters, {m['precision']}, "
        f"{m['actors']} actors × {m['cpus_per_actor']} CPU) scored {m['pairs_per_s']:.1f} pairs/s reading "
        f"{m['tokens_read_per_pair']:.1f} tokens per pair ({m['tokens_per_pair']:.1f} per pair, of which "
        f"{m['prompt_tokens_per_pair']:.1f} the query prompt, read once for {m['docs_per_query']:.0f} documents): "
        f"{m['achieved_flop_s'] / 1e9:.0f} GFLOP/s, {100 * m['share_of_matmul_rate']:.0f} % of this CPU's "
        f"{m['matmul_bf16_flop_s'] / 1e9:.0f} GFLOP/s bf16 matmul rate (load average {m['loadavg'][0]:.1f}).",
        "",
        f"Assumed for the paper's {p['pairs'] / 1e6:.0f} M pairs: a teacher of {p['non_embedding_params'] / 1e9:.1f} B "
        f"non-embedding parameters (Qwen2.5-7B class), {p['tokens_per_pair']} tokens per pair, no prompt sharing, "
        f"{p['flop_per_pair'] / 1e12:.1f} TFLOP per pair; vLLM's pooling runner at {u['assumed']} of the GPU's bf16 "
        f"dense peak (range {u['low']}–{u['high']}; the CPU labeling above reached "
        f"{m['share_of_matmul_rate']:.2f} of its matmul rate). One actor per GPU.",
        "",
        f"| GPU | GPUs | pairs/s at {u['assumed']} | hours at {u['low']} / {u['assumed']} / {u['high']} | settings |",
        "|---|---|---|---|---|",
    ]
    for row in p["rows"]:
        h, s = row["hours"], row["settings"]
        settings = ", ".join(f"`{k}={v}`" for k, v in s.items() if k not in ("scaling.use_gpu", "scoring.backend"))
        lines.append(f"| {row['gpu']} | {row['gpus']} | {row['pairs_per_s']:,.0f} | {h['low']:.1f} / "
                     f"{h['assumed']:.1f} / {h['high']:.1f} | {settings} |")  # fmt: skip
    lines += ["", "All rows: `scaling.use_gpu=true scoring.backend=vllm`; `rows_per_shard` is about two minutes of one "
              "GPU's work, what a crashed actor redoes."]  # fmt: skip
    return lines
