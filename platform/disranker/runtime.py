"""Where stages run: the ``scaling`` and ``run`` config sections every Ray stage shares, and Ray start-up.

Local by default: ``ensure_ray()`` starts an embedded Ray with this machine's CPUs. On a cluster the same config runs
unchanged under ``ray job submit`` (Ray is already initialised there, or ``scaling.address`` names the cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from disranker.config import ConfigError


@dataclass
class ScalingSection:
    num_workers: int = 2  # Ray Train workers (data-parallel ranks) or actors
    use_gpu: bool = False  # one GPU per worker unless gpus_per_worker says otherwise
    cpus_per_worker: float = 1.0  # fractional values let actors share a core (docs/operations.md)
    gpus_per_worker: float | None = None  # None: 1 when use_gpu
    resources_per_worker: dict[str, float] = field(default_factory=dict)  # custom resources, e.g. {"A100": 1}
    address: str | None = None  # None: the job's cluster, or an embedded local Ray; "auto" or ray://host:10001

    def validate(self) -> None:
        if self.num_workers < 1:
            raise ConfigError("'scaling.num_workers' must be ≥ 1")
        if self.cpus_per_worker <= 0:
            raise ConfigError("'scaling.cpus_per_worker' must be > 0")

    def worker_resources(self) -> dict[str, float]:
        resources = {"CPU": self.cpus_per_worker, **self.resources_per_worker}
        if self.use_gpu:
            resources["GPU"] = 1.0 if self.gpus_per_worker is None else self.gpus_per_worker
        return resources

    def to_ray_train(self):
        """The ``ray.train.ScalingConfig`` of this section."""
        from ray.train import ScalingConfig

        return ScalingConfig(
            num_workers=self.num_workers, use_gpu=self.use_gpu, resources_per_worker=self.worker_resources()
        )


@dataclass
class RunSection:
    storage_path: str | None = None  # checkpoints and results (local path or s3://…); None: <output_dir>/ray
    checkpoint_every_steps: int = 100  # report + checkpoint cadence (a report costs ~1.75 s, docs/operations.md)
    max_failures: int = 1  # worker failures to recover from (from the latest checkpoint)
    keep_checkpoints: int = 2

    def validate(self) -> None:
        if self.checkpoint_every_steps < 1:
            raise ConfigError("'run.checkpoint_every_steps' must be ≥ 1")


# Ray's own switch for its Prometheus metrics (``RAY_enable_metrics_collection``): set it to keep them on locally.
METRICS_SWITCH = "RAY_enable_metrics_collection"


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Connect to ``address`` or start an embedded local Ray, unless this process is already connected.

    An embedded Ray starts with its metrics collection off: on one machine nothing scrapes them, and Ray Data's
    ``_StatsActor`` kept growing with a run's length while it recorded them (210 → 316 MiB from a tenth of the full
    pool's labeling run to all of it, benchmarks/scale.py); a cluster keeps its own setting. The switch goes through
    the environment while Ray starts (its processes inherit it), because ``ray.init(_system_config=…)`` fails when a
    ``ray start`` cluster on this machine is found and joined instead."""
    import ray

    if ray.is_initialized():
        return
    embedded = address is None and not os.environ.get("RAY_ADDRESS") and METRICS_SWITCH not in os.environ
    if embedded:
        os.environ[METRICS_SWITCH] = "0"
    try:
        ray.init(address=address, **init_kwargs)
    finally:  # the local Ray's processes have it; a Ray started later in this process starts as the user's would
        if embedded:
            del os.environ[METRICS_SWITCH]
