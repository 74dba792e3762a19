"""Write docs/results.md from the benchmark JSON files in benchmarks/results/ (never by hand).

    python benchmarks/results_doc.py          # after a benchmark wrote its JSON; commit both

Each section reads one JSON file and says which command produced it; a file that is missing is named as missing, so
the page never shows a number that no file backs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path("benchmarks/results")


def teacher_speed(data: dict) -> list[str]:
    s, m = data["settings"], data["machine"]
    lines = [
        "## Teacher SFT training speed (`benchmarks/teacher_speed.py`)",
        "",
        f"SmolLM2-135M scorer, {s['groups_per_step']} query groups × {s['group_size']} documents per step (demo train "
        f"judgments, max_length {s['max_length']}), {s['steps']} timed steps after {s['warmup']} warm-up, "
        f"{m['torch_threads']} torch threads on {m['cpu']} (bf16 flags: {', '.join(m['cpu_bf16_flags']) or 'none'}), "
        "one run; every mode trains on the same groups from the same weights. `plain-fp32-foreach` is the SFT step "
        "before this change (one padded row per document, torch's default AdamW); the other modes use the stage's "
        "fused AdamW, so `× plain` is packing's or bf16's own factor. FLOPs are counted from the shapes (dense "
        "attention over each row's width).",
        "",
        "| mode | pairs/s | × before | × plain fp32 | s/step | tokens/step | GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["modes"]:
        before = f"{r['over_before']:.2f}" if r.get("over_before") else "-"
        plain = f"{r['over_plain_fp32']:.2f}" if r.get("over_plain_fp32") else "-"
        lines.append(
            f"| {r['mode']} | {r['pairs_per_s']:.2f} | {before} | {plain} | {r['seconds_per_step']:.2f} | "
            f"{r['tokens_per_step']:.0f} | {r['gflop_per_s']:.0f} |"
        )
    fp32_losses = {tuple(round(x, 4) for x in r["losses"]) for r in data["modes"] if r["precision"] == "fp32"}
    lines += ["", f"The fp32 modes' per-step losses agree to 4 decimals: {len(fp32_losses) == 1}."]
    return lines


def quality_study(data: dict) -> list[str]:
    s = data["settings"]
    lines = [
        "## Quality study (`benchmarks/quality_study.py`)",
        "",
        f"Small WordNet demo corpus; {data['pool_queries']} unlabeled pool queries labeled by the teacher; "
        f"{s['dev_queries']} dev queries pick every model's best epoch; {s['test_queries']} test queries, touched only "
        f"by the final comparison. Teacher: SmolLM2-135M, CPT {s['cpt_steps']} steps of 8 clicks, SFT "
        f"{s['sft_epochs']} epochs ({s['rank_loss']}, groups of {s['group_size']}, lr {s['sft_lr']}, head lr "
        f"{s['head_lr']}, {s['precision']}); students: MiniLM-L6, {s['student_epochs']} epochs (best dev epoch "
        f"kept), {s['groups_per_batch']} groups of {s['group_size']} per step, lr {s['student_lr']}, "
        f"seeds {', '.join(map(str, s['seeds']))} (a student row is the mean over seeds). Intervals: paired bootstrap "
        "over test queries, 95 %, on NDCG@10.",
        "",
        f"Claims at the demo budget ({s['demo_budget']} labeled train queries):",
        "",
        "| claim | value | 95 % interval | rule | holds |",
        "|---|---|---|---|---|",
    ]
    for c in data["claims"]:
        number = "{:.4f}" if c["name"].endswith("_over_teacher") else "{:+.4f}"  # a ratio, or a difference
        value, low, high = (number.format(c[k]) for k in ("value", "ci_low", "ci_high"))
        lines.append(f"| {c['name']} | {value} | [{low}, {high}] | {c['rule']} | {'yes' if c['holds'] else '**no**'} |")
    missing = [name for name in CLAIMS if name not in {c["name"] for c in data["claims"]}]
    if missing:
        lines += ["", f"Not measured in this run: {', '.join(missing)}."]
    for budget in data["budgets"]:
        lines += [
            "",
            f"NDCG@10 / PNR / MRR@10 with {budget['budget']} labeled train queries ({budget['test_queries']} test "
            "queries; students: mean ± std over seeds):",
            "",
            "| model | NDCG@10 | PNR | MRR@10 |",
            "|---|---|---|---|",
        ]
        single = {name: m for name, m in budget["metrics"].items() if "_s" not in name}
        for name, m in single.items():
            lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['pnr']:.3f} | {m['mrr@10']:.4f} |")
        for family, m in budget["students_mean_std"].items():
            cells = " | ".join(f"{m[k][0]:.4f} ± {m[k][1]:.4f}" for k in ("ndcg@10", "pnr", "mrr@10"))
            lines.append(f"| {family} student | {cells} |")
    lines += ["", "![learning curve](../benchmarks/results/quality_study.png)"]
    return lines


CLAIMS = (
    "teacher_minus_labels_only",
    "distilled_minus_labels_only",
    "distilled_over_teacher",
    "cpt_on_minus_off",
    "hybrid_minus_best_single",
)
SECTIONS = {"teacher_speed.json": teacher_speed, "quality_study.json": quality_study}


def render(results: Path) -> str:
    lines = [
        "# Measured results",
        "",
        "Generated by `python benchmarks/results_doc.py` from `benchmarks/results/*.json`; do not edit by hand.",
    ]
    for name, section in SECTIONS.items():
        path = results / name
        lines += [""] + (section(json.loads(path.read_text())) if path.exists() else [f"## {name}: not run yet"])
    others = sorted(p.name for p in results.glob("*.json") if p.name not in SECTIONS)
    lines += ["", "## Other benchmark files", "", "Their tables are in the README: " + ", ".join(others) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--out", default="docs/results.md")
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render(Path(args.results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
