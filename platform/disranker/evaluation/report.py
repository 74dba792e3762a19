"""Plain-text tables of metrics for terminals and logs.

Written by hand rather than with a table library: one fixed layout, no dependency, and the output is what the README
shows verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_COLUMNS = ("pnr", "pnr_query_mean", "ndcg@10", "mrr@10", "n_queries", "n_preference_pairs")


def metrics_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """One line per model, one column per metric; floats with 4 decimals, counts as integers."""
    header = ["model", *columns]
    body = [[name, *(_cell(metrics.get(c)) for c in columns)] for name, metrics in rows.items()]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [_line(header, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(row, widths) for row in body]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]).rstrip()
