"""The shared training loop with a stand-in task and Ray Train's worker calls replaced by a local recorder: which
batches train, when it checkpoints, what a resume continues from, and which model is exported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray.train
import torch

from disranker.faults import FaultInjection
from disranker.training import loop
from disranker.training.loop import LoopSettings, run_loop


class CountingTask:
    """A one-parameter model; batch ``(epoch, index)`` adds 1 to it, so its weight counts the batches trained on."""

    steps_per_epoch = 5

    def __init__(self, epochs: int = 2, dev_values=(0.5, 0.9), grad_accumulation: int = 1):
        self.total_steps = epochs * self.steps_per_epoch
        self.weight = torch.zeros(())
        self.trained: list[tuple[int, int]] = []
        self.dev_values = list(dev_values)
        self.evaluated_at: list[float] = []
        self.grad_accumulation = grad_accumulation

    def batches(self, epoch: int, done_steps: int):
        micro = self.steps_per_epoch * self.grad_accumulation
        return ((epoch, index) for index in range(done_steps * self.grad_accumulation, micro))

    def train(self, batch, step: int):
        self.trained.append(batch)
        self.weight += 1
        stepped = (batch[1] + 1) % self.grad_accumulation == 0
        return {"loss": torch.tensor(float(10 - len(self.trained)))}, stepped

    def evaluate(self):
        self.evaluated_at.append(float(self.weight))
        return {"ndcg@10": self.dev_values[len(self.evaluated_at) - 1]} if self.dev_values else None

    def save_state(self, folder: Path, rank: int) -> None:
        (folder / "weight.json").write_text(json.dumps(float(self.weight)))

    def load_state(self, folder: Path) -> None:
        self.weight = torch.tensor(json.loads((folder / "weight.json").read_text()))

    def export(self, folder: Path, rank: int) -> None:
        folder.mkdir(parents=True)
        (folder / "weight.json").write_text(json.dumps(float(self.weight)))

    def summary(self) -> dict:
        return {"stand_in": True}


class RayTrainRecorder:
    """``ray.train``'s worker calls for one rank of one: reports are kept, with a copy of each checkpoint folder."""

    def __init__(self, monkeypatch, root: Path, restore: Path | None = None):
        self.root, self.reports = root, []
        restored = None if restore is None else SimpleNamespace(as_directory=lambda: _Folder(restore))
        monkeypatch.setattr(ray.train, "get_checkpoint", lambda: restored)
        monkeypatch.setattr(ray.train, "get_context", lambda: SimpleNamespace(get_world_rank=lambda: 0,
                                                                           get_world_size=lambda: 1))  # fmt: skip
        monkeypatch.setattr(ray.train.Checkpoint, "from_directory", staticmethod(lambda path: path))
        monkeypatch.setattr(ray.train, "report", self.report)

    def report(self, metrics, checkpoint=None, delete_local_checkpoint_after_upload=False):
        kept = None
        if checkpoint is not None:
            kept = self.root / f"checkpoint-{len(self.reports)}"
            shutil.copytree(checkpoint, kept)
        self.reports.append((metrics, kept))

    def progress(self, index: int = -1) -> dict:
        return json.loads((self.reports[index][1] / loop.PROGRESS).read_text())


class _Folder:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return str(self.path)

    def __exit__(self, *exc):
        return False


SETTINGS = LoopSettings(epochs=2, log_every_steps=2, checkpoint_every_steps=2, select_metric="ndcg@10")


def test_checkpoints_dev_before_the_epochs_checkpoint_and_keeps_the_best_export(monkeypatch, tmp_path):
    recorder = RayTrainRecorder(monkeypatch, tmp_path)
    task = CountingTask(dev_values=(0.9, 0.5))  # epoch 0 is the better one
    run_loop(task, SETTINGS)

    assert task.trained == [(e, i) for e in range(2) for i in range(5)]
    assert [m["step"] for m, _ in recorder.reports] == [2, 4, 5, 6, 8, 10]  # every 2 steps and each epoch's end
    assert task.evaluated_at == [5.0, 10.0]
    assert recorder.reports[2][0]["dev_ndcg@10"] == 0.9  # the epoch-0 checkpoint already holds its dev pass
    final = recorder.progress()
    assert final["best"] == {"epoch": 0, "step": 5, "metric": "ndcg@10", "value": 0.9, "ndcg@10": 0.9}
    assert json.loads((recorder.reports[-1][1] / loop.EXPORT / "weight.json").read_text()) == 5.0  # best, not last
    assert [p["step"] for p in final["loss_curve"]] == [2, 4, 6, 8, 10]
    assert final["loss_curve"][0]["loss"] == pytest.approx((9 + 8) / 2)  # mean of the steps since the last point
    assert final["stand_in"] and final["steps_per_epoch"] == 5 and final["first_loss"] == 8.5


def test_a_failed_attempt_resumes_at_the_exact_next_batch(monkeypatch, tmp_path):
    first = RayTrainRecorder(monkeypatch, tmp_path / "first")
    with pytest.raises(RuntimeError, match="injected failure after step 7"):
        run_loop(CountingTask(), SETTINGS, FaultInjection(after_step=7))
    assert [m["step"] for m, _ in first.reports] == [2, 4, 5, 6]

    resumed = RayTrainRecorder(monkeypatch, tmp_path / "second", restore=first.reports[-1][1])
    task = CountingTask()
    run_loop(task, SETTINGS, FaultInjection(after_step=7))  # a resumed attempt does not fail again
    assert task.trained[0] == (1, 1)  # step 7 is the second of epoch 1
    assert float(task.weight) == 10.0  # every batch of both epochs counted once in the final model
    final = resumed.progress()
    assert final["resumed_from_steps"] == [6] and final["step"] == 10


def test_without_dev_the_final_model_is_the_export_and_accumulation_counts_optimizer_steps(monkeypatch, tmp_path):
    recorder = RayTrainRecorder(monkeypatch, tmp_path)
    task = CountingTask(dev_values=(), grad_accumulation=2)
    run_loop(task, SETTINGS)
    assert len(task.trained) == 20 and [m["step"] for m, _ in recorder.reports] == [2, 4, 5, 6, 8, 10]
    assert json.loads((recorder.reports[-1][1] / loop.EXPORT / "weight.json").read_text()) == 20.0
    assert recorder.progress()["best"] is None


def test_a_failure_inside_the_dev_pass_resumes_from_the_checkpoint_before_it(monkeypatch, tmp_path):
    first = RayTrainRecorder(monkeypatch, tmp_path / "first")
    task = CountingTask()
    with pytest.raises(RuntimeError, match="in the dev pass after step 5"):
        run_loop(task, SETTINGS, FaultInjection(after_step=5, in_dev_pass=True))
    assert task.evaluated_at == [5.0] and [m["step"] for m, _ in first.reports] == [2, 4]  # no epoch-0 checkpoint

    RayTrainRecorder(monkeypatch, tmp_path / "second", restore=first.reports[-1][1])
    resumed = CountingTask()
    run_loop(resumed, SETTINGS, FaultInjection(after_step=5, in_dev_pass=True))
    assert resumed.trained[0] == (0, 4) and float(resumed.weight) == 10.0 and resumed.evaluated_at == [5.0, 10.0]
