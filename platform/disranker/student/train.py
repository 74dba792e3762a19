"""The distillation stage: ``run(DistillConfig) -> student folder``, a BERT cross-encoder trained on Ray Train
through the shared training loop (``disranker.training``).

This module supplies distillation's part of that loop (a ``DistillTask`` per worker): its batches (``student.data``:
query groups in an order that is a function of seed and epoch), its loss (``student.losses``: Point-MSE + λ·Margin-MSE,
either alone, or listwise KD), its dev scoring (PNR, NDCG@10, MRR@10 each epoch; the best epoch is exported) and plain
DDP stepping (gloo on CPU, NCCL on GPUs). Resume, checkpoints, the loss curve and keep-best are the loop's. The output
folder is the best student plus ``disranker.json`` with the dev metrics and the loss curve; its ``config.json`` names
the identity activation for sentence-transformers, so ``CrossEncoder(folder).predict`` returns the raw logits.
"""

from __future__ import annotations

import math

import torch

from disranker import lineage
from disranker.config import from_dict
from disranker.data import io
from disranker.data.validate import validate_table
from disranker.evaluation.metrics import evaluate_rankings
from disranker.faults import FaultInjection
from disranker.models.loading import load_student, score_pairs_student
from disranker.models.text import pair_texts
from disranker.runtime import ensure_ray
from disranker.student import losses
from disranker.student.config import DistillConfig, LossSection
from disranker.student.data import StreamedGroups, check_labeling_finished, training_table
from disranker.training.grouping import publish_rejected, write_groups
from disranker.training.ingest import group_shards, shard_datasets
from disranker.training.loop import BackendTask, LoopSettings, run_loop, score_in_slices
from disranker.training.runner import StageRun, fault_of

STAGE = "distill"
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"
DEV_METRICS = ("pnr", "ndcg@10", "mrr@10", "pairwise_accuracy")


def run(config: DistillConfig, fault: FaultInjection | None = None) -> str:
    """Train the student (or skip when ``output_dir`` already holds this exact run) and return its folder."""
    config = io.with_absolute_paths(
        config, ("output_dir", "data.labels", "data.judgments", "data.dev"), model_specs=("student.model",)
    )
    if config.mode == "teacher":
        check_labeling_finished(config.data.labels)
    parents = lineage.parent_ids(tables=[config.train_table, config.data.dev])
    stage_run = StageRun(STAGE, config, config.output_dir, parents)
    if stage_run.done:
        return config.output_dir
    ensure_ray(config.scaling.address)
    train, contract = config.training, "labels" if config.mode == "teacher" else "judgments"
    table = training_table(config.train_table, contract)
    groups = write_groups(table, contract, config.target_column, stage_run.work_uri(config.run, "groups"))
    publish_rejected(groups, io.join(config.output_dir, "rejected", "train.parquet"))
    limit = groups.key_limits(config.scaling.num_workers, max_queries=config.data.max_queries)
    share = groups.share(config.scaling.num_workers, train.group_size, limit)
    steps = min(share.groups) // train.groups_per_batch
    if steps == 0:
        raise ValueError(
            f"{sum(share.groups)} query groups cannot fill one step of {train.groups_per_batch} groups on each of "
            f"{config.scaling.num_workers} workers (shares {share.groups}): lower training.groups_per_batch or give "
            "more data"
        )
    stage_run.fit(
        train_loop_per_worker,
        config.scaling,
        config.run,
        fault,
        extra_metrics={
            "inputs": {"train": groups.inputs},
            "train_rows": share.rows,
            "train_queries": share.queries,
            "groups_per_worker": share.groups,
        },
        datasets=shard_datasets(groups),
        dataset_config=group_shards(limit),
        loop_data={"steps_per_epoch": steps},
    )
    return config.output_dir


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker; all state comes from ``loop_config`` and the checkpoint (never module globals)."""
    config = from_dict(DistillConfig, loop_config["config"])
    train = config.training
    settings = LoopSettings(train.epochs, train.log_every_steps, config.run.checkpoint_every_steps, train.select_metric)
    run_loop(DistillTask(config, loop_config["data"]["steps_per_epoch"]), settings, fault_of(loop_config))


class DistillTask(BackendTask):
    """The student's batches, loss, dev scoring, state and export on one worker (``training.loop.Task``)."""

    def __init__(self, config: DistillConfig, steps_per_epoch: int):
        import ray.train
        import ray.train.torch
        from transformers import get_linear_schedule_with_warmup

        from disranker.training.ddp import DDPBackend

        self.config, train = config, config.training
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        torch.manual_seed(train.seed)  # the same fresh head on every rank (DDP also broadcasts rank 0's weights)
        model, self.tokenizer = load_student(config.student.model)
        self.tokenizer.model_max_length = config.student.max_length  # CrossEncoder truncates where we trained
        model.config.sentence_transformers = {"activation_fn": IDENTITY_ACTIVATION}  # CrossEncoder: raw logits
        self.groups = StreamedGroups(
            ray.train.get_dataset_shard("train"),
            config.target_column,
            train.group_size,
            train.groups_per_batch,
            steps_per_epoch,
            seed=train.seed,
        )
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = min(train.max_steps or math.inf, train.epochs * self.steps_per_epoch)
        # fused: one kernel over all parameters instead of a per-tensor loop (several times faster on CPU)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=True)
        warmup = int(train.warmup_ratio * self.total_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, self.total_steps)
        self.backend = DDPBackend(model, optimizer, scheduler, train.precision, max_grad_norm=train.max_grad_norm)
        self.device = ray.train.torch.get_device()
        self.dev = _read_dev(config)

    def batches(self, epoch: int, done_steps: int):
        max_length = self.config.student.max_length
        return self.groups.batches(epoch, self.tokenizer, max_length, start_step=done_steps)

    def train(self, batch, step: int) -> tuple[dict[str, torch.Tensor], bool]:
        seed = self.config.training.seed * 1_000_003 + step * self.world + self.rank  # pairs differ by step and rank
        parts = _loss(self.backend.forward, batch, self.config.loss, self.device, seed)
        stepped = self.backend.micro_step(parts.total)
        return {"loss": parts.total.detach(), "point": parts.point.detach(), "margin": parts.margin.detach()}, stepped

    def evaluate(self) -> dict[str, float] | None:
        if self.dev is None:
            return None
        config = self.config

        def score(part):
            texts = pair_texts(part)
            model, batch_size = self.backend.module, config.training.eval_batch_size
            return score_pairs_student(model, self.tokenizer, *texts, batch_size, config.student.max_length)

        scores = score_in_slices(score, self.dev, self.rank, self.world)
        metrics = evaluate_rankings(
            self.dev["query_id"].to_numpy(zero_copy_only=False),
            self.dev["label"].to_numpy(),
            scores,
            mrr_min_label=config.evaluation.mrr_min_label,
        )
        return {k: metrics[k] for k in DEV_METRICS}

    def summary(self) -> dict:
        return {}


def _loss(forward, batch, loss_cfg: LossSection, device, seed: int) -> losses.DistillLoss:
    """Student scores scattered back into the [groups, group_size] layout, then the configured loss."""
    mask, targets = batch.mask.to(device), batch.targets.to(device)
    logits = forward(**{k: v.to(device) for k, v in batch.encoded.items()}).logits[:, 0].float()
    student = torch.zeros(mask.shape, dtype=logits.dtype, device=device).masked_scatter(mask, logits)
    teacher = losses.normalize_teacher_scores(targets, mask, loss_cfg.normalize)
    zero = student.new_zeros(())
    if loss_cfg.name == "listwise_kd":
        total = losses.listwise_kd(student, teacher, mask, loss_cfg.temperature)
        return losses.DistillLoss(total, zero, zero)
    pairs = None
    if loss_cfg.pairs == "sampled":
        generator = torch.Generator(device=device).manual_seed(seed)
        pairs = losses.sample_pairs(mask, loss_cfg.pairs_per_group, generator)
    hybrid = losses.hybrid_distill_loss(student, teacher, mask, loss_cfg.margin_weight, pairs)
    if loss_cfg.name == "point":
        return losses.DistillLoss(hybrid.point, hybrid.point, hybrid.margin)
    if loss_cfg.name == "margin":
        return losses.DistillLoss(hybrid.margin, hybrid.point, hybrid.margin)
    return hybrid


def _read_dev(config: DistillConfig):
    return validate_table(io.read_table(config.data.dev), "judgments").valid if config.data.dev else None
