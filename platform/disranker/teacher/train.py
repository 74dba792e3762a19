"""Teacher training: ``run(TeacherConfig) -> output folder`` for CPT (causal LM on clicks) and SFT (rank-loss scorer
on judgment groups), on Ray Train through the shared training loop (``disranker.training``).

This module supplies the teacher's part of that loop (a ``TeacherTask`` per worker): its micro-batches (``Epochs``:
CPT examples length-bucketed, SFT query groups packed behind their prompt), its loss, its dev scoring (SFT: PNR and
NDCG@10 each epoch, the best epoch exported) and how it steps (plain DDP, or DeepSpeed ZeRO: ``teacher.backends``).
Resume, checkpoints, the loss curve and keep-best are the loop's (``training.loop``).
"""

from __future__ import annotations

import itertools
import logging
import math

import torch

from disranker import lineage
from disranker.config import from_dict
from disranker.data import io
from disranker.faults import FaultInjection
from disranker.models.lora import parameter_counts, with_lora
from disranker.models.packing import PackedRows, packed_scores, packing_unsupported_reason
from disranker.runtime import ensure_ray
from disranker.teacher import data, dev_scoring
from disranker.teacher.config import TeacherConfig
from disranker.teacher.losses import rank_loss
from disranker.training.grouping import write_groups
from disranker.training.ingest import group_shards, shard_datasets
from disranker.training.loop import BackendTask, LoopSettings, run_loop
from disranker.training.runner import StageRun, fault_of

logger = logging.getLogger(__name__)


def run(config: TeacherConfig, fault: FaultInjection | None = None) -> str:
    """Train the teacher stage ``config.stage`` unless ``output_dir`` already holds this exact run."""
    config = io.with_absolute_paths(
        config, ("output_dir", "data.clicks", "data.train", "data.dev"), model_specs=("model.spec",)
    )
    inputs = [config.data.clicks] if config.stage == "cpt" else [config.data.train, config.data.dev]
    parents = lineage.parent_ids(tables=inputs, models=[config.model.spec])
    stage_run = StageRun(f"teacher_{config.stage}", config, config.output_dir, parents)
    if stage_run.done:
        return config.output_dir
    streamed = _streamed_inputs(config, stage_run)
    input_counts = data.write_rejections(config, streamed["groups"])
    stage_run.fit(
        train_loop_per_worker,
        config.scaling,
        config.run,
        fault,
        extra_metrics={"inputs": input_counts, **streamed["metrics"]},
        datasets=shard_datasets(streamed["groups"]),
        dataset_config=group_shards(streamed["key_limits"]),
        loop_data=streamed["loop_data"],
    )
    return config.output_dir


def _streamed_inputs(config: TeacherConfig, stage_run: StageRun) -> dict:
    """The training table as the group table the workers stream (clicks for CPT, judgments for SFT), and each
    worker's examples per epoch: clicks, or queries with two labels or more."""
    ensure_ray(config.scaling.address)
    training, workers, out = config.training, config.scaling.num_workers, stage_run.work_uri(config.run, "groups")
    if config.stage == "cpt":
        groups = write_groups(config.data.clicks, "clicks", None, out)
        limit = groups.key_limits(workers, max_rows=config.data.max_examples)
        per_worker, unit = groups.share(workers, 1, limit).groups, "clicks"
    else:
        groups = write_groups(config.data.train, "judgments", "label", out)
        limit = groups.key_limits(workers, max_queries=config.data.max_examples)
        per_worker, unit = data.rankable_queries(groups, workers, limit), "queries with two labels or more"
    local = min(per_worker)
    steps = math.ceil(local / training.batch_size) // training.grad_accumulation
    if steps < 1:
        raise ValueError(
            f"{sum(per_worker)} {unit}, {per_worker} per worker, make fewer micro-batches of {training.batch_size} "
            f"than grad_accumulation={training.grad_accumulation} on the smallest share: lower training.batch_size or "
            "give more data"
        )
    queries = groups.share(workers, 1, limit).queries if config.stage == "sft" else None
    return {
        "groups": groups,
        "key_limits": limit,
        "loop_data": {"examples": sum(per_worker), "per_worker": local, "steps_per_epoch": steps, "queries": queries},
        "metrics": {"examples_per_worker": per_worker, **({"train_queries": queries} if queries else {})},
    }


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker: everything it needs comes from ``loop_config`` (a ``TeacherConfig`` as a dict)."""
    config = from_dict(TeacherConfig, loop_config["config"])
    training = config.training
    settings = LoopSettings(
        training.epochs, training.log_every_steps, config.run.checkpoint_every_steps, training.select_metric
    )
    run_loop(TeacherTask(config, loop_config["data"]), settings, fault_of(loop_config))


class TeacherTask(BackendTask):
    """The teacher's batches, loss, dev scoring, state and export on one worker (``training.loop.Task``)."""

    def __init__(self, config: TeacherConfig, streamed: dict):
        import ray.train
        import ray.train.torch
        from transformers import get_scheduler

        from disranker.models.loading import load_teacher_lm, load_teacher_scorer
        from disranker.teacher.backends import build_optimizer, make_backend

        self.config, training = config, config.training
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        torch.manual_seed(training.seed)
        load = load_teacher_lm if config.stage == "cpt" else load_teacher_scorer
        model, self.tokenizer = load(config.model.spec, trust_remote_code=config.model.trust_remote_code)
        packing_off = _packing_off_reason(config, model)
        if packing_off and self.rank == 0:
            logger.warning("SFT runs one padded row per document: %s", packing_off)
        if config.model.lora is not None:
            model = with_lora(model, config.model.lora, scorer=config.stage == "sft")
        self.parameters = parameter_counts(model)
        self.epochs = Epochs(config, self.tokenizer, self.rank, self.world, streamed, packed=packing_off is None)
        self.steps_per_epoch = self.epochs.steps_per_epoch
        self.total_steps = min(self.steps_per_epoch * training.epochs, training.max_steps or math.inf)
        optimizer = build_optimizer(model, config)
        scheduler = get_scheduler(training.schedule, optimizer, training.warmup_steps, self.total_steps)
        self.backend = make_backend(config, model, optimizer, scheduler)
        self.device = ray.train.torch.get_device()

    def batches(self, epoch: int, done_steps: int):
        return self.epochs.micro_batches(epoch, skip=done_steps * self.config.training.grad_accumulation)

    def train(self, batch: dict, step: int) -> tuple[dict[str, torch.Tensor], bool]:
        loss = _loss(self.config, self.backend, {k: v.to(self.device) for k, v in batch.items()})
        return {"loss": loss.detach()}, self.backend.micro_step(loss)

    def evaluate(self) -> dict[str, float] | None:
        if self.config.stage != "sft":
            return None
        dev = self.epochs.dev
        scores = dev_scoring.score_dev(self.config, self.backend, self.tokenizer, dev, self.rank, self.world)
        return dev_scoring.dev_metrics(dev, scores)

    def summary(self) -> dict:
        summary = {"n_examples": self.epochs.n_examples, "packed": self.epochs.packed, **self.parameters}
        if self.config.stage == "sft":  # a query whose docs all share one label gives no pair
            summary["queries_without_pairs"] = self.epochs.queries_without_pairs
        return summary


def _packing_off_reason(config: TeacherConfig, model) -> str | None:
    """Why SFT does not pack query groups (None: it does); CPT has a prompt per click and never packs."""
    if config.stage != "sft":
        return None
    if not config.training.packed:
        return "training.packed is false"
    return packing_unsupported_reason(model)


class Epochs:
    """This worker's share of the training data, cut into the same number of micro-batches on every rank."""

    def __init__(self, config: TeacherConfig, tokenizer, rank: int, world: int, streamed: dict, packed: bool = False):
        import ray.train

        self.config, self.tokenizer, self.rank, self.world = config, tokenizer, rank, world
        self.packed = packed
        training, shard = config.training, ray.train.get_dataset_shard("train")
        self.n_examples, self.n_local = streamed["examples"], streamed["per_worker"]
        self.steps_per_epoch = streamed["steps_per_epoch"]
        if config.stage == "cpt":
            self.clicks = data.StreamedClicks(
                shard, tokenizer, training.max_length, training.batch_size, training.seed, self.n_local
            )
        else:
            self.dev = data.read_valid(config.data.dev, "judgments")
            self.groups = data.StreamedLabelGroups(shard, training.group_size, training.seed)
            self.queries_without_pairs = streamed["queries"] - streamed["examples"]

    def micro_batches(self, epoch: int, skip: int):
        training = self.config.training
        if self.config.stage == "cpt":
            items = self.clicks.examples(epoch)
        else:  # new groups (other negatives) each epoch; every rank takes the smallest share's count
            items = itertools.islice(self.groups.groups(epoch), self.n_local)
        for _ in itertools.islice(items, skip * training.batch_size):
            pass
        for _ in range(skip, self.steps_per_epoch * training.grad_accumulation):
            chunk = list(itertools.islice(items, training.batch_size))
            if self.config.stage == "cpt":
                yield data.collate_cpt(chunk, self.tokenizer.pad_token_id)
            elif self.packed:
                yield data.collate_groups_packed(
                    chunk, self.tokenizer, training.max_length, training.group_size, training.pack_row_tokens
                )
            else:
                yield data.collate_groups(chunk, self.tokenizer, training.max_length, training.group_size)


def _loss(config: TeacherConfig, backend, batch: dict) -> torch.Tensor:
    if config.stage == "cpt":
        return backend.forward(**batch).loss  # transformers' shifted cross-entropy; -100 labels are ignored
    if "eos_index" in batch:
        flat_scores = packed_scores(backend.forward, backend.module, PackedRows.from_batch(batch))
    else:
        flat_scores = backend.forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    scores = data.scatter_scores(flat_scores.float(), batch["slots"], tuple(batch["labels"].shape))
    options = {"margin": config.training.margin} if config.training.rank_loss == "hinge" else {}
    return rank_loss(config.training.rank_loss, scores, batch["labels"], batch["mask"], **options)
