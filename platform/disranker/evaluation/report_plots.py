"""``report.png`` of the comparison stage: one matplotlib figure, laid out top to bottom as

1. the metrics table (a table artist: model, kind, PNR, NDCG@10, MRR@10, pairwise accuracy, latency per pair);
2. teacher vs student score distributions, one panel per student (the paper's analysis figure: a student distilled
   with Point-MSE on raw logits should reproduce the teacher's score scale, a margin-only one only its differences);
3. a scatter of student vs teacher score per pair, one panel per student, Pearson and Spearman in the title;
4. the students' training loss curves (from their ``disranker.json``).

Rows 2 and 3 need a teacher and at least one student; without them they are left out. The teacher of reference is
the first model of kind ``teacher``. Built on ``matplotlib.figure.Figure`` (no pyplot): no global figure registry,
nothing to close, safe in a worker process; PNG output goes through the Agg renderer.
"""

from __future__ import annotations

import io as bytes_io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from disranker.data import io

DPI = 100
PANEL_WIDTH_IN = 4.8  # one student column
MIN_WIDTH_IN = 10.0
ROW_HEIGHTS_IN = {"table": 0.35, "distribution": 3.4, "scatter": 3.8, "loss": 3.2}  # table: per model row, plus one
TABLE_COLUMNS = (
    ("kind", "kind"),
    ("pnr", "PNR"),
    ("ndcg@10", "NDCG@10"),
    ("mrr@10", "MRR@10"),
    ("pairwise_accuracy", "pair acc."),
    ("latency_ms_per_pair", "ms / pair"),
)


def build_report(
    metrics: Mapping[str, Mapping],
    scores: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    loss_curves: Mapping[str, Sequence[Mapping]],
) -> Figure:
    """The report figure. ``metrics``/``scores``/``kinds`` are keyed by model name (scores aligned row by row);
    ``loss_curves`` maps each student to its ``loss_curve`` records (step, loss)."""
    teacher = next((name for name, kind in kinds.items() if kind == "teacher"), None)
    students = [name for name, kind in kinds.items() if kind == "student"]
    pairs = [(teacher, student) for student in students] if teacher is not None else []
    rows = ["table", *(["distribution", "scatter"] if pairs else []), "loss"]
    heights = [ROW_HEIGHTS_IN[row] * (len(metrics) + 1 if row == "table" else 1) for row in rows]
    columns = max(len(pairs), 1)
    figure = Figure(figsize=(max(MIN_WIDTH_IN, PANEL_WIDTH_IN * columns), sum(heights) + 0.6), dpi=DPI)
    grid = figure.add_gridspec(len(rows), columns, height_ratios=heights, hspace=0.55, wspace=0.3)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.97, bottom=0.05)

    _metrics_table(figure.add_subplot(grid[0, :]), metrics)
    if pairs:
        for column, (reference, student) in enumerate(pairs):
            _distributions(figure.add_subplot(grid[1, column]), scores, reference, student)
            _scatter(figure.add_subplot(grid[2, column]), scores, metrics, reference, student)
    _loss_curves(figure.add_subplot(grid[len(rows) - 1, :]), loss_curves)
    return figure


def save_report(figure: Figure, uri: str) -> str:
    """Write the figure as a PNG at ``DPI`` (its pixel size is figsize × DPI; local path or URI)."""
    buffer = bytes_io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    fs, path = io.resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(buffer.getvalue())
    return uri


def _metrics_table(ax, metrics: Mapping[str, Mapping]) -> None:
    ax.set_axis_off()
    ax.set_title("metrics on the test split")
    # The model name is a plain first column: row labels would be drawn outside the axes and clipped at the edge.
    cells = [[name, *(_cell(values.get(key)) for key, _ in TABLE_COLUMNS)] for name, values in metrics.items()]
    table = ax.table(
        cellText=cells,
        colLabels=["model", *(label for _, label in TABLE_COLUMNS)],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.3)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _distributions(ax, scores: Mapping[str, np.ndarray], teacher: str, student: str) -> None:
    """Both score histograms on shared bins, as densities so the shapes compare whatever the pair count."""
    both = np.concatenate([scores[teacher], scores[student]])
    bins = np.linspace(both.min(), both.max(), 41) if both.max() > both.min() else 10
    ax.hist(scores[teacher], bins=bins, density=True, alpha=0.55, label=f"{teacher} (teacher)")
    ax.hist(scores[student], bins=bins, density=True, alpha=0.55, label=f"{student} (student)")
    ax.set_title(f"score distribution: {student} vs {teacher}")
    ax.set_xlabel("raw score (logit)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)


def _scatter(ax, scores, metrics, teacher: str, student: str) -> None:
    x, y = scores[teacher], scores[student]
    ax.scatter(x, y, s=4, alpha=0.35, rasterized=True)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([low, high], [low, high], linestyle="--", linewidth=0.8, color="grey")  # y = x: Point-MSE's target
    pearson, spearman = (_number(metrics[student][f"teacher_{name}"]) for name in ("pearson", "spearman"))
    ax.set_title(f"{student} vs {teacher}: Pearson {pearson}, Spearman {spearman}", fontsize=10)
    ax.set_xlabel(f"{teacher} score")
    ax.set_ylabel(f"{student} score")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _loss_curves(ax, loss_curves: Mapping[str, Sequence[Mapping]]) -> None:
    ax.set_title("training loss")
    drawn = False
    for name, curve in loss_curves.items():
        if curve:
            ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".", label=name)
            drawn = True
    if drawn:
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (mean since the last point)")
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no student with a recorded loss curve", ha="center", va="center", transform=ax.transAxes)
