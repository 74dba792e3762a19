"""``run(config)``: label a pool with the teacher on Ray Data, exactly once and resumably.

    shard plan ─► from_items (call-sized parts of the shards) ─► read + validate (tasks) ─► score (actor pool, backend)
              ─► driver: assemble each shard from its parts ─► write

Why the driver writes: a shard must be written whole to be skipped safely on rerun, but a GPU ``map_batches`` needs an
integer batch size, so Ray Data's blocks do not line up with shards (and ``write_parquet`` names files with random
ids). The driver streams the scored blocks (``iter_internal_ref_bundles``, with Ray Data's backpressure and progress
bars), puts each shard together as its last row arrives, and writes it atomically (``labeling.shards``). The rows are
small next to the teacher's work, so the driver is not the bottleneck.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

from disranker import lineage, tracking
from disranker.config import ConfigError, to_dict
from disranker.data import io
from disranker.faults import FaultInjection, given_or_from_env
from disranker.labeling import output_claim, precision_check
from disranker.labeling import shards as shard_plan
from disranker.labeling.backends import BACKENDS
from disranker.labeling.config import LabelConfig
from disranker.runtime import ensure_ray

logger = logging.getLogger(__name__)

STAGE = "label"
READ_CPUS = 0.25  # a read + validate task; actors must leave at least this much CPU free (docs/operations.md)


def run(config: LabelConfig, fault: FaultInjection | None = None) -> str:
    """Label every pool row not yet in a complete shard; returns ``config.output_dir``. ``fault``: a test's
    failure injection (``disranker.faults``; else the one in the environment, if any)."""
    fault = given_or_from_env(fault)
    config = io.with_absolute_paths(config, ("pool", "output_dir"), model_specs=("teacher.spec",))
    _check_teacher_head(config.teacher.spec)
    teacher_id = teacher_identity(config.teacher.spec, config.teacher.id)
    plan = output_claim.plan_record(
        shard_plan.pool_files(config.pool),
        config.rows_per_shard,
        teacher_id,
        output_claim.teacher_weights_digest(config.teacher.spec),
        config.score_relevant(),
    )
    fingerprint = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]
    parents = lineage.parent_ids(tables=[config.pool], models=[config.teacher.spec])
    asked = dataclasses.replace(config, relabel=False)  # the record holds what was labeled, not how it was asked
    expected = lineage.lineage_id(STAGE, to_dict(asked), parents, fingerprint)
    if not config.relabel and lineage.is_complete(config.output_dir, expected):
        return config.output_dir
    # After the check: the plan validates every pool row (to find repeated keys), which a finished rerun can skip.
    shards = shard_plan.plan_shards(config.pool, config.rows_per_shard)
    with output_claim.output_lock(config.output_dir) as refresh_lock:
        # The run uses the precision decided here (the record keeps the config as asked); the plan holds the one
        # used, so shards scored in bf16 on one machine are never completed in fp32 on another.
        config, precision_used = precision_check.decide(config, shards[0] if shards else None)
        output_claim.claim_output(config.output_dir, {**plan, "precision_used": precision_used["used"]}, config.relabel)
        metrics = _label_missing(config, shards, teacher_id, refresh_lock, fault)
        metrics["precision"] = precision_used
        metrics["summary"] = summary_line(metrics)
        # A run that kept rows the teacher failed on is recorded under another id: the next run is not skipped (it
        # scores them again), and what was distilled from these labels is not taken for what the full labels give.
        partial = f"-partial-{metrics['scorer_rejected']}" if metrics["scorer_rejected"] else ""
        lineage.write_lineage(
            config.output_dir, STAGE, to_dict(asked), parents=parents, fingerprint=fingerprint + partial,
            metrics=metrics,
        )  # fmt: skip
        tracking.log_stage_alone(config.output_dir)
    logger.info(metrics["summary"])
    return config.output_dir


def _label_missing(
    config: LabelConfig, shards: list[shard_plan.Shard], teacher_id: str, refresh_lock, fault: FaultInjection | None
) -> dict:
    """Score the shards not yet complete (those with scorer failures again), check the whole, return the metrics."""
    shard_plan.remove_partial_files(config.output_dir)  # the lock says no other write is in flight now
    names = {shard.name for shard in shards}
    retry = {name for name, _ in shard_plan.scorer_failures(config.output_dir, names)}
    if retry:  # the folder no longer holds a finished run until this one ends (distillation checks the record)
        output_claim.discard_record(config.output_dir)
        shard_plan.reopen(config.output_dir, retry)
    done = shard_plan.complete_shards(config.output_dir)
    pending = [shard for shard in shards if shard.name not in done]
    started = time.perf_counter()
    if pending:
        _label(pending, config, teacher_id, refresh_lock, fault)
    wall = time.perf_counter() - started

    counts = shard_plan.count_rows(config.output_dir, names)
    rows_in = sum(shard.num_rows for shard in shards)
    if counts["labeled"] + counts["rejected"] != rows_in:
        raise RuntimeError(f"{config.output_dir}: {counts} do not add up to the pool's {rows_in} rows")
    teachers = shard_plan.teacher_values(config.output_dir, names)
    if teachers - {teacher_id}:
        raise RuntimeError(f"{config.output_dir}: its labels hold teachers {sorted(teachers)}, expected {teacher_id}")
    scorer_rejected = len(shard_plan.scorer_failures(config.output_dir, names))
    if rows_in and counts["rejected"] > config.max_rejected_fraction * rows_in:
        raise RuntimeError(
            f"{config.output_dir}: {counts['rejected']} of {rows_in} pool rows were rejected "
            f"({counts['rejected'] / rows_in:.1%} > max_rejected_fraction={config.max_rejected_fraction}), "
            f"{scorer_rejected} of them by the teacher (retried on the next run); the reasons are in rejected/. "
            "Fix the pool, or raise max_rejected_fraction to accept them"
        )
    scored_now = sum(shard.num_rows for shard in pending)
    return {
        "rows_in": rows_in,
        **counts,
        "scorer_rejected": scorer_rejected,
        "teacher": teacher_id,
        "shards": len(shards),
        "shards_written": len(pending),
        "shards_skipped": len(shards) - len(pending),
        "wall_s": round(wall, 3),
        "pairs_per_s": round(scored_now / wall, 2) if wall > 0 and scored_now else 0.0,
    }


def summary_line(metrics: dict) -> str:
    """The one line a run ends with (also in ``disranker.json`` under ``metrics.summary``)."""
    return (
        f"labeling: {metrics['rows_in']} rows in, {metrics['labeled']} labeled, {metrics['rejected']} rejected; "
        f"{metrics['shards_written']} shards written, {metrics['shards_skipped']} skipped; "
        f"{metrics['pairs_per_s']} pairs/s, {metrics['wall_s']} s wall"
    )


def _label(
    pending: list[shard_plan.Shard], config: LabelConfig, teacher_id: str, refresh_lock, fault: FaultInjection | None
) -> None:
    import ray

    scaling = config.scaling
    ensure_ray(scaling.address)
    _check_free_cpu(config)
    # Ray Data marks these remote args deprecated but has no named parameter for them yet (its default is -1: forever).
    remote_args = {"max_restarts": config.scoring.max_restarts, "max_task_retries": config.scoring.max_task_retries}
    if scaling.resources_per_worker:
        remote_args["resources"] = scaling.resources_per_worker
    if fault is not None:  # a test's failure injection reaches the actors through their environment
        remote_args["runtime_env"] = {"env_vars": fault.env()}
    gpus = (1.0 if scaling.gpus_per_worker is None else scaling.gpus_per_worker) if scaling.use_gpu else None

    parts = [part for shard in pending for part in shard.parts(config.scoring.rows_per_call)]
    items = [{"shard": part.to_json()} for part in parts]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.map_batches(_read_shards, batch_size=1, batch_format="pyarrow", num_cpus=READ_CPUS)
    dataset = dataset.map_batches(
        BACKENDS[config.scoring.backend],
        fn_constructor_kwargs={
            "teacher": dataclasses.asdict(config.teacher),
            "scoring": dataclasses.asdict(config.scoring),
            "use_gpu": scaling.use_gpu,
        },
        batch_size=config.scoring.rows_per_call,
        batch_format="pyarrow",
        concurrency=scaling.num_workers,
        num_cpus=scaling.cpus_per_worker,
        num_gpus=gpus,
        **remote_args,
    )
    assembler = shard_plan.ShardAssembler(pending)
    # The scored blocks themselves (one Arrow table each), not iter_batches: Ray Data 2.60's plain iterator sends the
    # dataset's whole DatasetStats, which grows with every finished block, to Ray Data's stats actor every few seconds,
    # and that actor grew ~7.5 MiB a minute while the full pool was labeled (docs/results.md, the scale run).
    for bundle in dataset.iter_internal_ref_bundles():
        for entry in bundle.blocks:
            for name, rows in assembler.add(ray.get(entry.ref)):
                shard_plan.write_shard(config.output_dir, name, rows, teacher_id)
                refresh_lock()


def _read_shards(batch):
    import pyarrow as pa

    return pa.concat_tables([shard_plan.read_shard(text) for text in batch["shard"].to_pylist()])


def _check_free_cpu(config: LabelConfig) -> None:
    """Fail fast where the pipeline would hang: CPU actors holding every CPU leave none for the read tasks."""
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    held = config.scaling.num_workers * config.scaling.cpus_per_worker
    if held + READ_CPUS > total:
        raise ConfigError(
            f"{config.scaling.num_workers} actors × scaling.cpus_per_worker={config.scaling.cpus_per_worker} leave "
            f"less than {READ_CPUS} of Ray's {total:g} CPUs for reading, and Ray Data would wait forever; lower "
            "scaling.cpus_per_worker (fractions are fine) or scaling.num_workers"
        )


def teacher_identity(spec: str, explicit: str | None = None) -> str:
    """The ``teacher`` column: the explicit id, else ``<stage>:<lineage id>`` of the teacher folder, else the spec."""
    if explicit:
        return explicit
    record = lineage.record_above(spec, levels=1)
    return f"{record['stage']}:{record['id']}" if record else spec


def _check_teacher_head(spec: str) -> None:
    """A teacher without a trained 1-logit head would get a random head per actor: scores would not agree."""
    config_path = io.join(spec, "config.json")
    architectures = [] if spec.startswith("packaged:") else io.read_json(config_path).get("architectures") or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise ConfigError(
            f"teacher.spec={spec!r} is not a *ForSequenceClassification folder (architectures: {architectures or '?'})"
            ": label with the SFT teacher's folder, whose score head is trained"
        )
