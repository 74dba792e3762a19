"""The distillation stage: ``run(DistillConfig) -> student folder``, a BERT cross-encoder trained on Ray Train.

Each worker rebuilds the typed config from a plain dict, loads the student (``models.loading.load_student``), reads
its slice of the query groups (``student.data``) and trains with DDP (gloo on CPU, NCCL on GPUs). Every
``run.checkpoint_every_steps`` steps and at each epoch end rank 0 reports a checkpoint holding:

- ``model/``: the current student (HF folder + tokenizer), ``trainer_state.pt``: optimizer and scheduler,
- ``state.json``: step, loss curve, dev metrics per epoch, best dev metric, the steps it was resumed from,
- ``best/``: the student with the best dev ``training.select_metric`` so far (the latest one without a dev split).

A restarted attempt (``FailureConfig``) resumes from ``ray.train.get_checkpoint()``: weights, optimizer, scheduler,
the step counter and the exact next batch (the group order is a function of seed and epoch). The output folder is the
final checkpoint's ``best/`` plus ``disranker.json`` with the dev metrics and the loss curve. Its ``config.json``
names the identity activation for sentence-transformers, so ``CrossEncoder(folder).predict`` returns the raw logits.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs
import torch

from disranker import lineage
from disranker.config import from_dict, to_dict
from disranker.data import io
from disranker.data.validate import validate_table
from disranker.evaluation.metrics import evaluate_rankings
from disranker.models import precision
from disranker.models.loading import load_student, score_pairs_student
from disranker.models.text import pair_texts
from disranker.runtime import ensure_ray
from disranker.student import losses
from disranker.student.config import DistillConfig, LossSection
from disranker.student.data import QueryGroups, check_labeling_finished
from disranker.student.inputs import prepare_inputs

STAGE = "distill"
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"


def run(config: DistillConfig) -> str:
    """Train the student (or skip when ``output_dir`` already holds this exact run) and return its folder."""
    config = prepare_inputs(config)
    if config.mode == "teacher":
        check_labeling_finished(config.data.labels)
    parents = lineage.parent_ids(tables=[config.train_table, config.data.dev])
    expected = lineage.lineage_id(STAGE, to_dict(config), parents)
    if lineage.is_complete(config.output_dir, expected):
        return config.output_dir
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    ensure_ray(config.scaling.address)
    storage = config.run.storage_path or io.join(config.output_dir, "ray")
    fs, local = io.resolve(storage)
    started = time.perf_counter()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": to_dict(config)},
        scaling_config=config.scaling.to_ray_train(),
        run_config=RunConfig(
            name=f"distill-{expected}",
            storage_path=local if isinstance(fs, pafs.LocalFileSystem) else storage,
            failure_config=FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
        ),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / "state.json").read_text())
        out_fs, out_path = io.resolve(config.output_dir)
        out_fs.create_dir(out_path, recursive=True)
        pafs.copy_files(str(Path(folder) / "best"), out_path, destination_filesystem=out_fs)
    metrics = {**state, "wall_s": round(time.perf_counter() - started, 1)}
    lineage.write_lineage(config.output_dir, STAGE, to_dict(config), parents=parents, metrics=metrics)
    return config.output_dir


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker; all state comes from ``loop_config`` and the checkpoint (never module globals)."""
    import ray.train
    import ray.train.torch
    from transformers import get_linear_schedule_with_warmup

    config = from_dict(DistillConfig, loop_config["config"])
    train, loss_cfg = config.training, config.loss
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(train.seed)  # the same fresh head on every rank (DDP also broadcasts rank 0's weights)
    model, tokenizer = load_student(config.student.model)
    tokenizer.model_max_length = config.student.max_length  # CrossEncoder truncates at the length we trained with
    model.config.sentence_transformers = {"activation_fn": IDENTITY_ACTIVATION}  # CrossEncoder returns raw logits
    groups = QueryGroups.from_uri(
        config.train_table,
        "labels" if config.mode == "teacher" else "judgments",
        config.target_column,
        config.data.max_queries,
        group_size=train.group_size,
        groups_per_batch=train.groups_per_batch,
        seed=train.seed,
    )
    steps_per_epoch = groups.steps_per_epoch(world)
    total_steps = min(train.max_steps or math.inf, train.epochs * steps_per_epoch)
    # fused: one kernel over all parameters instead of a per-tensor loop (several times faster on CPU)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(train.warmup_ratio * total_steps), total_steps)
    state = {
        "step": 0,
        "loss_curve": [],
        "dev": [],
        "best": None,
        "train_rows": groups.num_rows,
        "resumed_from_steps": [],
    }
    best_weights = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state, best_weights = _restore(Path(folder), model, optimizer, scheduler)
        state["resumed_from_steps"].append(state["step"])
    resumed = checkpoint is not None
    model = ray.train.torch.prepare_model(model)
    # prepare_model wraps in DDP only with more than one worker: `plain` is the bare model either way.
    plain = getattr(model, "module", model)
    device = ray.train.torch.get_device()
    dev = _read_dev(config) if rank == 0 else None
    step = state["step"]
    running = torch.zeros(4, device=device)  # sums of total, point, margin, and the step count since the last point

    for epoch in range(step // steps_per_epoch, train.epochs):
        if step >= total_steps:
            break
        for batch in groups.batches(
            epoch, rank, world, tokenizer, config.student.max_length, start_step=step - epoch * steps_per_epoch
        ):
            if step >= total_steps:
                break
            if train.fail_at_step == step and not resumed:
                raise RuntimeError(f"injected failure at step {step} (training.fail_at_step, a test hook)")
            with precision.autocast(train.precision, device.type):
                parts = _loss(model, batch, loss_cfg, device, seed=train.seed * 1_000_003 + step * world + rank)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            if train.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            running += torch.stack([parts.total.detach(), parts.point.detach(), parts.margin.detach(), torch.ones(())])
            if step % train.log_every_steps == 0 or step == total_steps:
                state["loss_curve"].append({"step": step, "epoch": epoch, **_mean_losses(running, world)})
                running.zero_()
            epoch_done = step == total_steps or step == (epoch + 1) * steps_per_epoch
            if epoch_done and dev is not None:
                state["dev"].append({"epoch": epoch, "step": step, **_evaluate(plain, tokenizer, dev, config)})
                value = state["dev"][-1][train.select_metric]
                if state["best"] is None or value > state["best"]["value"]:
                    state["best"] = {"epoch": epoch, "step": step, "metric": train.select_metric, "value": value}
                    best_weights = {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}
            if epoch_done or step % config.run.checkpoint_every_steps == 0:
                state["step"] = step
                _report(state, plain, tokenizer, optimizer, scheduler, best_weights, rank)


def _loss(model, batch, loss_cfg: LossSection, device, seed: int) -> losses.DistillLoss:
    """Student scores scattered back into the [groups, group_size] layout, then the configured loss."""
    mask, targets = batch.mask.to(device), batch.targets.to(device)
    logits = model(**{k: v.to(device) for k, v in batch.encoded.items()}).logits[:, 0].float()
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


def _mean_losses(running: torch.Tensor, world: int) -> dict[str, float]:
    """Mean loss parts over the steps since the last point and over all ranks."""
    summed = running.clone()
    if world > 1:
        torch.distributed.all_reduce(summed)
    total, point, margin, count = (summed / summed[3].clamp_min(1)).tolist()[:3] + [summed[3].item()]
    return {"loss": total, "point": point, "margin": margin, "steps": int(count / world)}


def _read_dev(config: DistillConfig):
    return validate_table(io.read_table(config.data.dev), "judgments").valid if config.data.dev else None


def _evaluate(model, tokenizer, dev, config: DistillConfig) -> dict:
    scores = score_pairs_student(
        model,
        tokenizer,
        *pair_texts(dev),
        batch_size=config.training.eval_batch_size,
        max_length=config.student.max_length,
    )
    metrics = evaluate_rankings(
        dev["query_id"].to_numpy(zero_copy_only=False),
        dev["label"].to_numpy(),
        scores,
        mrr_min_label=config.evaluation.mrr_min_label,
    )
    return {k: metrics[k] for k in ("pnr", "ndcg@10", "mrr@10", "pairwise_accuracy")}


def _report(state, model, tokenizer, optimizer, scheduler, best_weights, rank: int) -> None:
    """Report the step's metrics from every rank; rank 0 alone attaches the checkpoint."""
    import ray.train

    metrics = {"step": state["step"], **(state["loss_curve"][-1] if state["loss_curve"] else {})}
    metrics.update({f"dev_{k}": v for k, v in (state["dev"][-1] if state["dev"] else {}).items()})
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.save_pretrained(folder / "model")
        tokenizer.save_pretrained(folder / "model")
        # Without a dev split (or before its first pass) the latest weights are the best we know.
        model.save_pretrained(folder / "best", state_dict=best_weights)
        tokenizer.save_pretrained(folder / "best")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, folder / "trainer.pt")
        (folder / "state.json").write_text(json.dumps(state))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _restore(folder: Path, model, optimizer, scheduler) -> tuple[dict, dict | None]:
    """Load a checkpoint written by :func:`_report` into the (not yet DDP-wrapped) model and optimizer."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(folder / "model" / "model.safetensors"))
    trainer = torch.load(folder / "trainer.pt", weights_only=True)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    state = json.loads((folder / "state.json").read_text())
    best = load_file(folder / "best" / "model.safetensors") if state["best"] is not None else None
    return state, best
