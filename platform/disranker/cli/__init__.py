"""disranker: distil an LLM ranker into a BERT cross-encoder on Ray.

Every stage command takes --config FILE plus key.sub=value overrides, exactly like its jobs/<stage>.py twin; the
named options are shortcuts for the common overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from disranker.cli.common import ConfigOption, Overrides, load_stage_config
from disranker.cli.data_commands import baseline_app, data_app
from disranker.config import ConfigError

DEFAULT_SERVE_CONFIG = Path("serve/config.yaml")
app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(data_app, name="data")
app.add_typer(baseline_app, name="baseline")


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

    cfg = load_stage_config(
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


@app.command("score")
def score(
    config: ConfigOption = None,
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option(help="Trained teacher or student folder (or URI).")] = None,
    table: Annotated[str | None, typer.Option("--input", help="Judgments or pool table to score.")] = None,
    out: Annotated[str | None, typer.Option(help="Scores table to write (.parquet).")] = None,
    kind: Annotated[str | None, typer.Option(help="teacher or student (default student).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per forward pass.")] = None,
) -> None:
    """Score any table with any trained model into the scores contract (Ray Data above local_max_rows rows)."""
    from disranker.evaluation.score import ScoreConfig, run

    cfg = load_stage_config(
        ScoreConfig, config, overrides, model=model, input=table, out=out, kind=kind, batch_size=batch_size
    )
    typer.echo(run(cfg).summary)


@app.command("pipeline")
def pipeline(
    config: ConfigOption = None,
    overrides: Overrides = None,
    size: Annotated[str | None, typer.Option(help="tiny (minutes) or demo (real models): names the config.")] = None,
) -> None:
    """Run every stage in order on the embedded defaults and print the comparison table."""
    from disranker import pipeline as main_job

    try:
        path = main_job.config_for_size(size, None if config is None else str(config))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    cfg = load_stage_config(main_job.PipelineConfig, None if path is None else Path(path), overrides)
    if size == "tiny":  # the smoke files start from the tiny models `data build-smoke-inputs` makes: make them first
        from disranker.testing.smoke import build_smoke_inputs

        build_smoke_inputs()
    typer.echo(main_job.run(cfg).summary())


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

    folder = train.run(load_stage_config(TeacherConfig, config, overrides, stage=stage, output_dir=out))
    final = (lineage.read_lineage(folder) or {}).get("metrics", {})
    typer.echo(json.dumps({k: v for k, v in final.items() if k not in ("loss_curve", "dev")}, indent=1))
    typer.echo(f"teacher written to {folder}")


@app.command("distill")
def distill(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Distil teacher labels (or, with mode=labels_only, the human grades) into the BERT cross-encoder student."""
    from disranker import lineage
    from disranker.student import train
    from disranker.student.config import DistillConfig

    folder = train.run(load_stage_config(DistillConfig, config, overrides))
    metrics = (lineage.read_lineage(folder) or {}).get("metrics", {})
    typer.echo(json.dumps({"dev": metrics.get("dev"), "best": metrics.get("best")}, indent=1))
    typer.echo(f"student written to {folder}")


@app.command("serve")
def serve_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Serve config file (serve/config.yaml).")
    ] = DEFAULT_SERVE_CONFIG,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides of the application's args, e.g. model=outputs/demo/distill.")
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
    try:
        url = start_local(local)
    except Exception as exc:  # Serve's own failure is a long traceback; one line says what to do
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        typer.echo(
            f"error: the endpoint did not start ({type(exc).__name__}: {first_line[:300]}). If the machine is busy, "
            "retry when it is quieter or raise RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S; `ray stop` clears a half-started "
            "Ray.",
            err=True,
        )
        raise typer.Exit(1) from exc
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
    relabel: Annotated[
        bool, typer.Option("--relabel", help="Discard shards labeled from another pool, teacher or settings.")
    ] = False,
) -> None:
    """Score every pool pair with the teacher on Ray Data (exactly once; a rerun resumes)."""
    from disranker import labeling, lineage

    cfg = load_stage_config(
        labeling.LabelConfig,
        config,
        overrides,
        pool=pool,
        output_dir=out,
        relabel=True if relabel else None,
        **{"teacher.spec": teacher, "scoring.backend": backend},
    )
    typer.echo(lineage.read_lineage(labeling.run(cfg))["metrics"]["summary"])


@app.command("compare")
def compare_command(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Score a test split with BM25, random, teachers and students: metrics.json, TREC runs and report.png."""
    from disranker.data import io
    from disranker.evaluation import compare
    from disranker.evaluation.report import metrics_table

    folder = compare.run(load_stage_config(compare.CompareConfig, config, overrides))
    typer.echo(metrics_table(io.read_json(io.join(folder, "metrics.json")), compare.SUMMARY_COLUMNS))
    typer.echo(f"outputs (metrics.json, report.png, <model>.run): {folder}")


@app.command("evaluate-models", hidden=True)
def evaluate_models(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """The old name of `compare` (issue 17: one name per stage), kept for one release."""
    typer.echo("disranker evaluate-models is deprecated and goes in the next release: use disranker compare", err=True)
    compare_command(config, overrides)
