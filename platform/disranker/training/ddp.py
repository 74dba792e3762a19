"""Plain torch DDP for a training task: Ray Train's ``prepare_model``, manual gradient accumulation, bf16 autocast.

A task steps its model through one surface, the one the teacher's DeepSpeed backend also offers
(``teacher.backends``): ``module`` (the bare model, for scoring and export), ``forward``, ``micro_step`` (backward,
plus one optimizer step every ``grad_accumulation`` micro-steps), ``save_state``/``load_state`` (resume) and
``export`` (an HF folder).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from disranker.models import precision as precisions
from disranker.models.lora import save_merged


class DDPBackend:
    def __init__(
        self,
        model,
        optimizer,
        scheduler,
        precision: precisions.Precision = "fp32",
        grad_accumulation: int = 1,
        max_grad_norm: float = 0.0,
    ):
        import ray.train.torch

        self.wrapped = ray.train.torch.prepare_model(model)  # DDP with more than one worker, the model itself with one
        self.module = model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.precision, self.grad_accumulation, self.max_grad_norm = precision, grad_accumulation, max_grad_norm
        self.micro_steps = 0
        self.device_type = next(model.parameters()).device.type

    def forward(self, **batch):
        with precisions.autocast(self.precision, self.device_type):
            return self.wrapped(**batch)

    def micro_step(self, loss: torch.Tensor) -> bool:
        """Backward one micro-batch; at each accumulation boundary clip, step and return True."""
        self.micro_steps += 1
        boundary = self.micro_steps % self.grad_accumulation == 0
        # Skipping the all-reduce on non-boundary micro-steps is what makes accumulation cheap under DDP.
        sync = contextlib.nullcontext() if boundary or not hasattr(self.wrapped, "no_sync") else self.wrapped.no_sync()
        with sync:
            (loss / self.grad_accumulation).backward()
        if not boundary:
            return False
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def save_state(self, folder: Path, rank: int) -> None:
        if rank == 0:  # DDP replicas are identical: one copy is the state
            state = {k: v.state_dict() for k, v in self._stateful().items()}
            torch.save(state, folder / "train_state.pt")

    def load_state(self, folder: Path) -> None:
        state = torch.load(folder / "train_state.pt", map_location="cpu", weights_only=True)
        for name, obj in self._stateful().items():
            obj.load_state_dict(state[name])

    def export(self, folder: Path, tokenizer, rank: int) -> None:
        if rank == 0:
            save_merged(self.module, folder)  # LoRA adapters merged (models.lora)
            tokenizer.save_pretrained(folder)

    def _stateful(self) -> dict:
        return {"model": self.module, "optimizer": self.optimizer, "scheduler": self.scheduler}
