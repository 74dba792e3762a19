"""The step loop every Ray Train worker of every training stage runs: ``run_loop(task, settings)``.

A stage hands in a ``Task``: its micro-batches, its loss step, its dev scoring, its state and its export. The loop
owns everything the stages have in common:

- resume: ``ray.train.get_checkpoint()`` gives back the progress (step, loss curve, dev history, best), the task's
  state (weights, optimizer, scheduler) and the best export so far; the epoch goes on from the first step not done
  (``Task.batches(epoch, done_steps)`` derives the order from seed and epoch, so the next batch is the exact one);
- the loss curve: every ``log_every_steps`` optimizer steps, the mean of each loss part over those steps and all ranks;
- a checkpoint every ``checkpoint_every_steps`` steps and at each epoch's end, the epoch's dev pass first, so the
  checkpoint that closes an epoch already holds that epoch's dev result and best export;
- keep-best: a dev pass that beats the best ``select_metric`` so far exports the model (``export/``); without a dev
  split the export is the final model;
- failure injection for tests (``disranker.faults.FaultInjection``): one rank raises once, after a given step, to
  exercise the resume, and every step's example ids traced.

Checkpoint layout: ``progress.json`` (rank 0), the task's state files, ``export/`` (rank 0, once there is one).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from disranker.faults import FaultInjection

PROGRESS = "progress.json"
EXPORT = "export"


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    log_every_steps: int
    checkpoint_every_steps: int
    select_metric: str  # the dev metric that picks the export (higher is better)


class Task(Protocol):
    """What a stage supplies to the loop (built on each worker from the stage's config)."""

    steps_per_epoch: int
    total_steps: int  # epochs × steps_per_epoch, or fewer (max_steps)

    def batches(self, epoch: int, done_steps: int) -> Iterator[Any]:
        """This rank's micro-batches of ``epoch``, starting after ``done_steps`` optimizer steps of it."""

    def train(self, batch: Any, step: int) -> tuple[dict[str, torch.Tensor], bool]:
        """Forward and backward one micro-batch (``step`` optimizer steps done so far): its loss parts (0-d, detached;
        ``loss`` is the one trained) and whether an optimizer step completed."""

    def evaluate(self) -> dict[str, float] | None:
        """Dev metrics of the current model (every rank calls it and gets the same dict); None without a dev split."""

    def save_state(self, folder: Path, rank: int) -> None: ...

    def load_state(self, folder: Path) -> None: ...

    def export(self, folder: Path, rank: int) -> None:
        """The model as an HF folder (every rank calls it: under ZeRO-3 the export is a collective)."""

    def summary(self) -> dict[str, Any]:
        """Stage-specific numbers for the final metrics (example counts, packing, ...)."""


class BackendTask:
    """The state and export half of a ``Task`` for a task that steps ``self.backend`` (``training.ddp.DDPBackend`` or
    DeepSpeed's) and exports with ``self.tokenizer``."""

    backend: Any
    tokenizer: Any

    def save_state(self, folder: Path, rank: int) -> None:
        self.backend.save_state(folder, rank)

    def load_state(self, folder: Path) -> None:
        self.backend.load_state(folder)

    def export(self, folder: Path, rank: int) -> None:
        self.backend.export(folder, self.tokenizer, rank)


def run_loop(task: Task, settings: LoopSettings, fault: FaultInjection | None = None) -> None:
    """Train ``task`` to its ``total_steps`` on this worker, reporting checkpoints to Ray Train."""
    import ray.train

    context = ray.train.get_context()
    # Checkpoints are copied into the run's storage when reported; the scratch (the best export between checkpoints)
    # goes when the worker ends, so repeated runs do not fill the disk.
    with tempfile.TemporaryDirectory(prefix="train-") as scratch:
        _Loop(task, settings, context.get_world_rank(), context.get_world_size(), Path(scratch)).run(fault)


class _Loop:
    def __init__(self, task: Task, settings: LoopSettings, rank: int, world: int, scratch: Path):
        self.task, self.settings, self.rank, self.world, self.scratch = task, settings, rank, world, scratch
        self.export_dir = scratch / EXPORT
        self.state: dict[str, Any] = {"step": 0, "loss_curve": [], "dev": [], "best": None, "resumed_from_steps": []}
        self.running: dict[str, torch.Tensor] = {}
        self.micro_batches = 0
        self.step_ids: list = []

    def run(self, fault: FaultInjection | None) -> None:
        import ray.train

        restored = ray.train.get_checkpoint()
        if restored is not None:
            with restored.as_directory() as folder:
                self.state = json.loads((Path(folder) / PROGRESS).read_text())
                self.task.load_state(Path(folder))
                if (Path(folder) / EXPORT).is_dir():
                    shutil.copytree(Path(folder) / EXPORT, self.export_dir)
            self.state["resumed_from_steps"].append(self.state["step"])
        task, state, per_epoch = self.task, self.state, self.task.steps_per_epoch
        for epoch in range(state["step"] // per_epoch, self.settings.epochs):
            if state["step"] >= task.total_steps:
                break
            for batch in task.batches(epoch, state["step"] - epoch * per_epoch):
                parts, stepped = task.train(batch, state["step"])
                self._accumulate(parts)
                self.step_ids += getattr(batch, "ids", [])
                if not stepped:
                    continue
                state["step"] += 1
                ids, self.step_ids = self.step_ids, []
                if fault and fault.trace_dir:
                    self._trace(Path(fault.trace_dir), ids)
                if fault and fault.fires(state["step"], self.rank, restored is not None, in_dev_pass=False):
                    raise RuntimeError(f"injected failure after step {state['step']} (FaultInjection, a test hook)")
                if state["step"] % self.settings.log_every_steps == 0 or state["step"] == task.total_steps:
                    self._log_losses(epoch)
                epoch_done = state["step"] == task.total_steps or state["step"] == (epoch + 1) * per_epoch
                if epoch_done:
                    break
                if state["step"] % self.settings.checkpoint_every_steps == 0:
                    self._report({"epoch": epoch})
            last = epoch == self.settings.epochs - 1 or state["step"] >= task.total_steps
            self._close_epoch(epoch, last, fault if restored is None else None)

    def _close_epoch(self, epoch: int, last: bool, fault: FaultInjection | None) -> None:
        """The epoch's dev pass (keeping the best export), then its checkpoint; the last one carries the summary."""
        state = self.state
        dev = self.task.evaluate()
        if fault and fault.fires(state["step"], self.rank, resumed=False, in_dev_pass=True):
            raise RuntimeError(f"injected failure in the dev pass after step {state['step']} (FaultInjection)")
        metrics: dict[str, Any] = {"epoch": epoch}
        if dev is not None:
            state["dev"].append({"epoch": epoch, "step": state["step"], **dev})
            value = dev[self.settings.select_metric]
            if state["best"] is None or value > state["best"]["value"]:
                state["best"] = {"epoch": epoch, "step": state["step"], "metric": self.settings.select_metric}
                state["best"] |= {"value": value, **dev}
                self._export()
            metrics |= {f"dev_{k}": v for k, v in dev.items()}
        if last:
            if state["best"] is None:  # no dev split: the final model is the export
                self._export()
            losses = [point["loss"] for point in state["loss_curve"]]
            state |= {"steps_per_epoch": self.task.steps_per_epoch, **self.task.summary()}
            state |= {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
        self._report(metrics)

    def _trace(self, folder: Path, ids: list) -> None:
        resumed = self.state["resumed_from_steps"][-1] if self.state["resumed_from_steps"] else None
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank-{self.rank}.jsonl", "a") as trace:
            trace.write(json.dumps({"step": self.state["step"], "resumed_from": resumed, "ids": ids}) + "\n")

    def _export(self) -> None:
        shutil.rmtree(self.export_dir, ignore_errors=True)
        self.task.export(self.export_dir, self.rank)

    def _accumulate(self, parts: dict[str, torch.Tensor]) -> None:
        for name, value in parts.items():
            self.running[name] = self.running.get(name, 0.0) + value.detach().float()
        self.micro_batches += 1

    def _log_losses(self, epoch: int) -> None:
        """One loss-curve point: each part's mean over the micro-batches since the last point and over the ranks."""
        names = sorted(self.running)
        summed = torch.stack([self.running[name].cpu() for name in names] + [torch.tensor(float(self.micro_batches))])
        if self.world > 1:
            torch.distributed.all_reduce(summed)
        means = (summed[:-1] / summed[-1].clamp_min(1)).tolist()
        point = {"step": self.state["step"], "epoch": epoch} | {n: v for n, v in zip(names, means, strict=True)}
        self.state["loss_curve"].append(point)
        self.running, self.micro_batches = {}, 0

    def _report(self, metrics: dict[str, Any]) -> None:
        """Every rank reports the step; each writes its part of the state, rank 0 the progress and the export."""
        import ray.train

        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        self.task.save_state(folder, self.rank)
        if self.rank == 0:
            (folder / PROGRESS).write_text(json.dumps(self.state))
            if self.export_dir.is_dir():
                shutil.copytree(self.export_dir, folder / EXPORT)
        last_loss = self.state["loss_curve"][-1]["loss"] if self.state["loss_curve"] else math.nan
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if any(folder.iterdir()) else None
        ray.train.report(
            {"step": self.state["step"], "loss": last_loss, **metrics},
            checkpoint=checkpoint,
            delete_local_checkpoint_after_upload=True,
        )


def score_in_slices(score, table, rank: int, world: int) -> np.ndarray:
    """``score(rows)`` of every row of ``table`` (a pyarrow table, in order), each rank scoring an equal-size slice
    (the last padded with the last row) and all ranks receiving the gathered scores."""
    per_rank = math.ceil(table.num_rows / world)
    rows = np.minimum(np.arange(rank * per_rank, (rank + 1) * per_rank), table.num_rows - 1)
    scores = np.asarray(score(table.take(rows)), dtype=np.float32)
    if world == 1:
        return scores[: table.num_rows]
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, scores)
    return np.concatenate(gathered)[: table.num_rows]
