"""Teacher training on Ray Train: ``run(TeacherConfig) -> output folder`` for CPT (causal LM on clicks) and SFT
(rank-loss scorer on judgment groups).

Each worker rebuilds the typed config from the dict it is given, reads its shard of the data, and every
``run.checkpoint_every_steps`` optimizer steps reports a checkpoint (model/optimizer/scheduler state, the step
counter, the loss history and, for SFT, the best dev model so far). After a worker failure Ray Train restarts the
workers (``run.max_failures``) and ``ray.train.get_checkpoint()`` hands them the latest checkpoint: the run goes on
from that step, skipping the micro-batches it had already seen in that epoch. Rerunning the same config after a
driver crash resumes the same way (same run name and storage). The last checkpoint holds ``export/``, the HF folder
that ``run`` copies to ``output_dir`` with its ``disranker.json``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import torch

from disranker import lineage
from disranker.config import from_dict, to_dict
from disranker.data import io
from disranker.models.packing import PackedRows, packed_scores, packing_unsupported_reason
from disranker.teacher import data, dev_scoring
from disranker.teacher.config import TeacherConfig
from disranker.teacher.losses import rank_loss

EXPORT = "export"
PACKED_KEYS = ("input_ids", "position_ids", "attention_mask", "eos_index")
logger = logging.getLogger(__name__)


def run(config: TeacherConfig) -> str:
    """Train the teacher stage ``config.stage`` unless ``output_dir`` already holds this exact run."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from disranker.runtime import ensure_ray

    config = data.prepare_inputs(config)
    inputs = [config.data.clicks] if config.stage == "cpt" else [config.data.train, config.data.dev]
    parents = lineage.parent_ids(tables=inputs, models=[config.model.spec])
    expected = lineage.lineage_id(f"teacher_{config.stage}", to_dict(config), parents)
    if lineage.is_complete(config.output_dir, expected):
        return config.output_dir

    input_counts = data.write_rejections(config)
    ensure_ray(config.scaling.address)
    storage = config.run.storage_path or io.join(config.output_dir, "ray")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=to_dict(config),
        scaling_config=config.scaling.to_ray_train(),
        torch_config=TorchConfig(backend="nccl" if config.scaling.use_gpu else "gloo"),
        run_config=RunConfig(
            name=f"teacher-{config.stage}-{expected}",
            storage_path=storage,
            failure_config=FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
        ),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        fs, out = io.resolve(config.output_dir)
        fs.create_dir(out, recursive=True)
        pafs.copy_files(str(Path(folder) / EXPORT), out, destination_filesystem=fs)
    final = {k: v for k, v in result.metrics.items() if not k.startswith("_")} | {"inputs": input_counts}
    lineage.write_lineage(config.output_dir, f"teacher_{config.stage}", to_dict(config), parents=parents, metrics=final)
    return config.output_dir


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker: everything it needs comes from ``loop_config`` (a ``TeacherConfig`` as a dict)."""
    import ray.train
    from transformers import get_scheduler

    from disranker.models.loading import load_teacher_lm, load_teacher_scorer
    from disranker.teacher.backends import build_optimizer, make_backend

    config = from_dict(TeacherConfig, loop_config)
    training = config.training
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(training.seed)

    load = load_teacher_lm if config.stage == "cpt" else load_teacher_scorer
    model, tokenizer = load(config.model.spec, trust_remote_code=config.model.trust_remote_code)
    packing_off = _packing_off_reason(config, model)
    if packing_off and rank == 0:
        logger.warning("SFT runs one padded row per document: %s", packing_off)
    epochs = Epochs(config, tokenizer, rank, world, packed=packing_off is None)
    total_steps = min(epochs.steps_per_epoch * training.epochs, training.max_steps or math.inf)
    optimizer = build_optimizer(model, config)
    scheduler = get_scheduler(training.schedule, optimizer, training.warmup_steps, total_steps)
    backend = make_backend(config, model, optimizer, scheduler)

    # Checkpoints are copied into the run's storage when reported; the local scratch (the best export between
    # checkpoints) goes when the worker ends, so repeated runs do not fill the disk.
    with tempfile.TemporaryDirectory(prefix="teacher-") as scratch:
        _train(config, epochs, total_steps, backend, tokenizer, rank, world, Path(scratch))


def _packing_off_reason(config: TeacherConfig, model) -> str | None:
    """Why SFT does not pack query groups (None: it does); CPT has a prompt per click and never packs."""
    if config.stage != "sft":
        return None
    if not config.training.packed:
        return "training.packed is false"
    return packing_unsupported_reason(model)


def _train(config, epochs, total_steps, backend, tokenizer, rank: int, world: int, workdir: Path) -> None:
    """The step loop of one worker, checkpointing through ``ray.train.report`` from ``workdir`` (scratch)."""
    import ray.train

    training = config.training
    device = ray.train.torch.get_device()
    export_dir = workdir / EXPORT
    state = {"step": 0, "losses": [], "dev": [], "best": None, "resumed_from_step": None}
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = json.loads((Path(folder) / "progress.json").read_text())
            state["resumed_from_step"] = state["step"]
            backend.load_state(Path(folder))
            if (Path(folder) / EXPORT).is_dir():
                shutil.copytree(Path(folder) / EXPORT, export_dir)

    def report(extra_metrics: dict, with_export: bool = False) -> None:
        folder = Path(tempfile.mkdtemp(dir=workdir))
        backend.save_state(folder, rank)
        if rank == 0:
            (folder / "progress.json").write_text(json.dumps(state))
            if with_export and export_dir.is_dir():
                shutil.copytree(export_dir, folder / EXPORT)
        saved = any(folder.iterdir())
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if saved else None
        ray.train.report(
            {"step": state["step"], **extra_metrics}, checkpoint=checkpoint, delete_local_checkpoint_after_upload=True
        )

    first_epoch = state["step"] // epochs.steps_per_epoch
    for epoch in range(first_epoch, training.epochs):
        done_in_epoch = state["step"] - epoch * epochs.steps_per_epoch
        window = []
        for batch in epochs.micro_batches(epoch, skip=done_in_epoch * training.grad_accumulation):
            if state["step"] >= total_steps:
                break
            loss = _loss(config, backend, {k: v.to(device) for k, v in batch.items()})
            window.append(loss.item())
            if not backend.micro_step(loss):
                continue
            state["step"] += 1
            state["losses"].append(float(np.mean(window)))
            window = []
            if state["step"] == config.fail_once_at_step and restored is None and rank == 0:
                raise RuntimeError(f"injected failure after step {state['step']} (test hook fail_once_at_step)")
            if state["step"] % config.run.checkpoint_every_steps == 0:
                report({"loss": state["losses"][-1], "epoch": epoch}, with_export=True)
        if config.stage == "sft":
            scores = dev_scoring.score_dev(config, backend, tokenizer, epochs.dev, rank, world)
            dev = dev_scoring.dev_metrics(epochs.dev, scores)
            state["dev"].append({"epoch": epoch, **dev})
            if state["best"] is None or dev[training.select_metric] > state["best"][training.select_metric]:
                state["best"] = {"epoch": epoch, "step": state["step"], **dev}
                shutil.rmtree(export_dir, ignore_errors=True)
                backend.export(export_dir, tokenizer, rank)
            report({f"dev_{k}": v for k, v in dev.items()} | {"epoch": epoch}, with_export=True)
        if state["step"] >= total_steps:
            break
    if config.stage == "cpt":
        backend.export(export_dir, tokenizer, rank)
    report(_final_metrics(state, epochs), with_export=True)


class Epochs:
    """This worker's shard of the training data, cut into the same micro-batches on every rank."""

    def __init__(self, config: TeacherConfig, tokenizer, rank: int, world: int, packed: bool = False):
        self.config, self.tokenizer, self.rank, self.world = config, tokenizer, rank, world
        self.packed = packed
        training = config.training
        if config.stage == "cpt":
            clicks = data.read_valid(config.data.clicks, "clicks")
            examples = data.cpt_examples(clicks, tokenizer, training.max_length, config.data.max_examples)
            self.cpt = data.shard(examples, rank, world)
            self.n_examples, n_local = len(examples), len(self.cpt)
        else:
            self.train = data.read_valid(config.data.train, "judgments")
            self.dev = data.read_valid(config.data.dev, "judgments")
            groups, self.group_stats = data.query_groups(
                self.train, training.group_size, training.seed, config.data.max_examples
            )
            self.n_examples, n_local = len(groups), len(data.shard(groups, rank, world))
        micro_batches = math.ceil(n_local / training.batch_size)
        self.steps_per_epoch = micro_batches // training.grad_accumulation
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{self.n_examples} examples on {world} workers make {micro_batches} micro-batches of "
                f"{training.batch_size}: fewer than grad_accumulation={training.grad_accumulation}"
            )

    def micro_batches(self, epoch: int, skip: int):
        training = self.config.training
        rng = np.random.default_rng([training.seed, epoch])
        if self.config.stage == "cpt":
            shuffled = [self.cpt[i] for i in rng.permutation(len(self.cpt))]
            items = data.length_bucketed(shuffled, training.batch_size, rng)
        else:  # new groups (other negatives) each epoch; the same on every rank, then sharded
            groups, _ = data.query_groups(
                self.train, training.group_size, training.seed + epoch, self.config.data.max_examples
            )
            shard = data.shard(groups, self.rank, self.world)
            items = [shard[i] for i in rng.permutation(len(shard))]
        n_batches = self.steps_per_epoch * training.grad_accumulation
        for index in range(skip, n_batches):
            chunk = items[index * training.batch_size : (index + 1) * training.batch_size]
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
        rows = PackedRows(**{k: batch[k] for k in PACKED_KEYS}, standalone=int(batch["standalone"]))
        flat_scores = packed_scores(backend.forward, backend.module, rows)
    else:
        flat_scores = backend.forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    scores = data.scatter_scores(flat_scores.float(), batch["slots"], tuple(batch["labels"].shape))
    options = {"margin": config.training.margin} if config.training.rank_loss == "hinge" else {}
    return rank_loss(config.training.rank_loss, scores, batch["labels"], batch["mask"], **options)


def _final_metrics(state: dict, epochs: Epochs) -> dict:
    final = {
        "n_examples": epochs.n_examples,
        "steps_per_epoch": epochs.steps_per_epoch,
        "first_loss": state["losses"][0] if state["losses"] else None,
        "last_loss": state["losses"][-1] if state["losses"] else None,
        "loss_history": state["losses"],
        "resumed_from_step": state["resumed_from_step"],
        "packed": epochs.packed,
    }
    if state["best"] is not None:
        skipped = epochs.group_stats.queries - epochs.group_stats.groups  # all docs share one label: no pair
        final |= {"best": state["best"], "dev_history": state["dev"], "queries_without_pairs": skipped}
    return final
