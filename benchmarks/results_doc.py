"""Write docs/results.md from the benchmark JSON files in benchmarks/results/ (never by hand).

    python benchmarks/results_doc.py          # after a benchmark wrote its JSON; commit both

Each section reads one JSON file and says which command produced it; a file that is missing is named as missing, so
the page never shows a number that no file backs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from results_platform import (
    cluster_sizing,
    faults,
    labeling,
    onnx_agreement,
    scale,
    serve_load,
)
from results_teacher import (  # benchmarks/ is first on sys.path
    gpu_checks,
    teacher_lora,
    teacher_lora_cuda,
    teacher_speed,
)

RESULTS = Path("benchmarks/results")


def demo_run(data: dict) -> list[str]:
    m = data["machine"]
    return [
        "## The main job (`make demo`, `benchmarks/demo_run.py`)",
        "",
        f"`{data['command']}` into a fresh folder: {data['wall_s'] / 60:.1f} minutes on {m['cores']} cores of "
        f"{m['cpu']} (load average {m['loadavg_start'][0]:.1f} at start). What it printed:",
        "",
        "```",
        data["summary"],
        "```",
    ]


def quality_study(data: dict) -> list[str]:
    s = data["settings"]
    lines = [
        "## Quality study (`benchmarks/quality_study.py`)",
        "",
        f"Small WordNet demo corpus; {data['pool_queries']} unlabeled pool queries labeled by the teacher; "
        f"{data['dev_queries']} dev queries pick every model's best epoch; {s['test_queries']} test queries, touched "
        f"only by the final comparison. Teacher: SmolLM2-135M, CPT {s['cpt_steps']} steps of 8 clicks, SFT "
        f"{s['sft_epochs']} epochs ({s['rank_loss']}, groups of {s['group_size']}, lr {s['sft_lr']}, head lr "
        f"{s['head_lr']}, {s['precision']}); students: MiniLM-L6, {s['student_epochs']} epochs over the labeled "
        f"queries (labels-only) and {s.get('distill_epochs') or s['student_epochs']} over the pool (distilled; the "
        f"best dev epoch kept either way; the teacher's scores as targets with "
        f"loss.normalize={s.get('normalize', 'none')}), "
        f"{s['groups_per_batch']} groups of {s['group_size']} per step, lr "
        f"{s['student_lr']}, "
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
        name = f"{c['name']} ({c['source']}, {c['pool_queries']} pool queries)" if "source" in c else c["name"]
        lines.append(f"| {name} | {value} | [{low}, {high}] | {c['rule']} | {'yes' if c['holds'] else '**no**'} |")
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
    lines += pool_sizes(RESULTS)
    lines += ["", "![learning curve](../benchmarks/results/quality_study.png)"]
    return lines


def pool_sizes(results: Path) -> list[str]:
    """The claims at each pool size and target scaling the study was run with (``quality_study*.json``)."""
    runs = sorted(
        (json.loads(path.read_text()) for path in results.glob("quality_study*.json")),
        key=lambda d: (d["pool_queries"], d["settings"].get("normalize", "none")),
    )
    if len(runs) < 2:
        return []
    lines = [
        "",
        "The study at each unlabeled pool size and distillation target it was run with (NDCG@10 on the same test "
        "queries; distilled: mean "
        "over seeds, trained for the epochs shown; each run picks every model's epoch on its own dev split, of the "
        "size shown, so runs with different dev splits have teachers and labels-only students of their own):",
        "",
        "| pool queries | targets | teacher | labels-only | distilled | distilled − labels-only | distilled / teacher "
        "| epochs | dev queries |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        budget = next(b for b in run["budgets"] if b["budget"] == run["settings"]["demo_budget"])
        ndcg, intervals = budget["ndcg@10"], budget["intervals"]
        diff, ratio = intervals["distilled_minus_labels_only"], intervals["distilled_over_teacher"]
        epochs = run["settings"].get("distill_epochs") or run["settings"]["student_epochs"]
        lines.append(
            f"| {run['pool_queries']} | {run['settings'].get('normalize', 'none')} | {ndcg['teacher']:.4f} | "
            f"{ndcg['labels_only']:.4f} | {ndcg['hybrid']:.4f} | "
            f"{diff['value']:+.4f} [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}] | "
            f"{ratio['value']:.3f} [{ratio['ci_low']:.3f}, {ratio['ci_high']:.3f}] | {epochs} | "
            f"{run['dev_queries']} |"
        )
    return lines


def quality_trials(data: dict) -> list[str]:
    lines = [
        "## Recipe trials on dev (`benchmarks/quality_study.py --dev-only`)",
        "",
        "Distilled-student recipes tried against the study's teacher and picked on dev alone (test untouched); a "
        "student's value is its best dev epoch's NDCG@10, the share is the seeds' mean over the teacher's dev NDCG@10.",
        "",
        "| trial | pool queries | epochs | λ (margin) | normalize | lr | dev queries | students (best epoch) | share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in data["trials"].items():
        students = ", ".join(f"{s} {v['ndcg@10']:.4f} ({v['epoch']})" for s, v in t["students"].items())
        lines.append(
            f"| {name} | {t['pool_queries']} | {t['distill_epochs']} | {t['margin_weight']:g} | {t['normalize']} | "
            f"{t['student_lr']:g} | {t['dev_queries']} | {students} | {t['share_of_teacher']:.3f} |"
        )
    return lines


def distill_ablation(data: dict) -> list[str]:
    seeds = ", ".join(map(str, data["seeds"]))
    lines = [
        "## Loss ablation (`benchmarks/distill_ablation.py`)",
        "",
        f"The demo run's teacher and its labels of {data['pool_queries']} pool queries; the demo's distilled-student "
        f"config with only the loss and the seed changed (seeds {seeds}); {data['test_queries']} test queries (a "
        "seeded sample of the test split). The best single loss is picked on dev "
        f"(`{data['best_single_loss']}`); intervals: paired bootstrap over test queries, 95 %, on the seed means.",
        "",
        "| loss | test NDCG@10 | dev value (mean over seeds) |",
        "|---|---|---|",
    ]
    for loss, dev in data["dev_mean"].items():
        lines.append(f"| {loss} | {data['ndcg@10'][loss]:.4f} | {dev:.4f} |")
    lines.append(f"| teacher | {data['ndcg@10']['teacher']:.4f} | |")
    spread = max(data["dev_mean"].values()) - min(data["dev_mean"].values())
    lines += [
        "",
        f"The losses' dev values lie within {spread:.4f} of each other: the dev sample cannot tell them "
        "apart, so the pick of the best single loss is close to a coin toss: read hybrid against each.",
    ]
    lines += ["", "| difference | value | 95 % interval |", "|---|---|---|"]
    for name, i in data["intervals"].items():
        number = "{:.4f}" if name.endswith("_over_teacher") else "{:+.4f}"
        lines.append(f"| {name} | {number.format(i['value'])} | [{number.format(i['ci_low'])}, "
                     f"{number.format(i['ci_high'])}] |")  # fmt: skip
    return lines


CLAIMS = (
    "teacher_minus_labels_only",
    "distilled_minus_labels_only",
    "distilled_over_teacher",
    "cpt_on_minus_off",
    "hybrid_minus_best_single",
)
SECTIONS = {
    "demo.json": demo_run,
    "teacher_speed.json": teacher_speed,
    "gpu_checks.json": gpu_checks,
    "teacher_lora.json": teacher_lora,
    "teacher_lora_cuda.json": teacher_lora_cuda,
    "quality_study.json": quality_study,
    "quality_trials.json": quality_trials,
    "distill_ablation.json": distill_ablation,
    "labeling.json": labeling,
    "serve_load.json": serve_load,
    "onnx_agreement.json": onnx_agreement,
    "faults.json": faults,
    "scale.json": scale,
    "cluster_sizing.json": cluster_sizing,
}
# Files read by another section (the pool-size table) or kept as the record of a superseded measurement.
COVERED = ("quality_study_pool200.json", "quality_study_pool1000.json")


def render(results: Path) -> str:
    lines = [
        "# Measured results",
        "",
        "Generated by `python benchmarks/results_doc.py` from `benchmarks/results/*.json`; do not edit by hand.",
    ]
    for name, section in SECTIONS.items():
        path = results / name
        if not path.exists():
            lines += ["", f"## {name}: not run yet"]
            continue
        data = json.loads(path.read_text())
        # A run's "notes" (what was measured around it, by whom and why) follow its section, whatever the section.
        lines += ["", *section(data), *(line for note in data.get("notes", []) for line in ("", note))]
    covered = {p.name for pattern in COVERED for p in results.glob(pattern)}
    others = sorted(p.name for p in results.glob("*.json") if p.name not in SECTIONS and p.name not in covered)
    lines += ["", "## Other benchmark files", "", f"Superseded measurements, kept as records: {', '.join(others)}."]
    return "\n".join(lines) + "\n"


README_BLOCK = re.compile(r"(<!-- demo:begin -->\n).*?(<!-- demo:end -->)", re.DOTALL)


def update_readme(readme: Path, results: Path) -> None:
    """Put the end of the demo run's printout (``demo.json``: its comparison table on) between the README's demo
    markers; the whole printout is in docs/results.md, so the front door stays one page."""
    path = results / "demo.json"
    if not path.exists():
        return
    data = json.loads(path.read_text())
    summary = data["summary"]
    table = summary[summary.index("\nmodel ") + 1 :] if "\nmodel " in summary else summary
    block = (
        f"```\n…\n{table}\n```\n\nWall time {data['wall_s'] / 60:.1f} min on {data['machine']['cores']} cores "
        f"of {data['machine']['cpu']} (`{data['command']}`).\n"
    )
    readme.write_text(README_BLOCK.sub(lambda m: m.group(1) + block + m.group(2), readme.read_text()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--readme", default="README.md", help="its demo block is rewritten from demo.json")
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render(Path(args.results)))
    update_readme(Path(args.readme), Path(args.results))
    print(f"wrote {args.out} and the demo block of {args.readme}")


if __name__ == "__main__":
    main()
