"""What every training stage shares: the driver-side run (``runner``), the worker-side loop (``loop``) and the plain
DDP way of stepping a model (``ddp``). Teacher CPT, teacher SFT and distillation each supply only their batches,
their loss and their dev scoring (a ``loop.Task``)."""
