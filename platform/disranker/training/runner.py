"""The driver side of a training stage: skip a run that is already done, else train on Ray Train and publish.

    run = StageRun("distill", config, config.output_dir, parents)
    if not run.done:
        run.fit(train_loop_per_worker, config.scaling, config.run)

``fit`` starts a ``TorchTrainer`` (gloo on CPU, NCCL on GPUs) under ``<output_dir>/ray`` (or ``run.storage_path``),
with ``FailureConfig(max_failures)`` and ``CheckpointConfig(keep_checkpoints)``; every worker runs the stage's
``train_loop_per_worker({"config": ..., "fault": ...})``, which builds its task and calls ``loop.run_loop``. The run's
name is the stage and its lineage id, so rerunning the same config after a driver crash resumes the same run from its
latest checkpoint. The final checkpoint's ``export/`` is copied to ``output_dir`` and its progress (loss curve, dev
history, best, resumes) becomes the metrics of the folder's ``disranker.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from disranker import lineage, tracking
from disranker.config import ConfigError, to_dict
from disranker.data import io
from disranker.faults import FaultInjection, given_or_from_env
from disranker.runtime import RunSection, ScalingSection, ensure_ray
from disranker.training.loop import EXPORT, PROGRESS


class StageRun:
    """One run of ``stage`` with ``config`` on the inputs ``parents`` (lineage ids) into ``output_dir``."""

    def __init__(self, stage: str, config: Any, output_dir: str, parents: list[str]):
        self.stage, self.config, self.output_dir, self.parents = stage, config, output_dir, parents
        self.expected = lineage.lineage_id(stage, to_dict(config), parents)

    @property
    def done(self) -> bool:
        """True when ``output_dir`` already holds this exact run (same stage, config and inputs)."""
        return lineage.is_complete(self.output_dir, self.expected)

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.expected}"

    def work_uri(self, run: RunSection, part: str) -> str:
        """Where this run keeps ``part`` of its working data (beside its Ray Train run folder)."""
        return io.join(_storage(self.storage(run)), f"{self.name}-{part}")

    def storage(self, run: RunSection) -> str:
        return run.storage_path or io.join(self.output_dir, "ray")

    def fit(
        self,
        train_loop_per_worker: Callable[[dict], None],
        scaling: ScalingSection,
        run: RunSection,
        fault: FaultInjection | None = None,
        extra_metrics: dict | None = None,
        datasets: dict | None = None,
        dataset_config=None,
        loop_data: dict | None = None,
    ) -> dict:
        """Train, copy the export to ``output_dir``, write its record; returns the record's metrics. ``datasets``
        (Ray Datasets) reach the workers through ``dataset_config``; ``loop_data`` is passed to them as it is.
        ``fault``: a test's failure injection (``disranker.faults``; else the one in the environment, if any)."""
        fault = given_or_from_env(fault)
        if fault is not None and fault.after_step is not None and fault.after_step <= run.checkpoint_every_steps:
            raise ValueError("FaultInjection.after_step must exceed run.checkpoint_every_steps, so the resume skips it")
        from ray.train import CheckpointConfig, FailureConfig, RunConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        ensure_ray(scaling.address)
        if datasets:
            _check_ingest_room(scaling)
        started = time.perf_counter()
        trainer = TorchTrainer(
            _worker,
            train_loop_config={
                "entry": train_loop_per_worker,
                "threads": max(1, math.ceil(scaling.cpus_per_worker)),
                "config": to_dict(self.config),
                "fault": dataclasses.asdict(fault) if fault else None,
                "data": loop_data or {},
            },
            scaling_config=scaling.to_ray_train(),
            torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
            datasets=datasets,
            **({"dataset_config": dataset_config} if dataset_config is not None else {}),
            run_config=RunConfig(
                name=self.name,
                storage_path=_storage(self.storage(run)),
                failure_config=FailureConfig(max_failures=run.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=run.keep_checkpoints),
            ),
        )
        result = trainer.fit()
        with result.checkpoint.as_directory() as folder:
            progress = json.loads((Path(folder) / PROGRESS).read_text())
            fs, out = io.resolve(self.output_dir)
            fs.create_dir(out, recursive=True)
            pafs.copy_files(str(Path(folder) / EXPORT), out, destination_filesystem=fs)
        metrics = progress | {"wall_s": round(time.perf_counter() - started, 1)} | (extra_metrics or {})
        lineage.write_lineage(self.output_dir, self.stage, to_dict(self.config), parents=self.parents, metrics=metrics)
        tracking.log_stage_alone(self.output_dir)
        return metrics


def _worker(loop_config: dict) -> None:
    """Every worker: torch's threads to the CPUs it holds (rounded up: 1.75 CPUs left for data still means 2 threads),
    then the stage's own ``train_loop_per_worker``."""
    import torch

    torch.set_num_threads(loop_config["threads"])
    loop_config["entry"](loop_config)


def _check_ingest_room(scaling: ScalingSection) -> None:
    import ray

    from disranker.training.ingest import INGEST_CPUS

    total = ray.cluster_resources().get("CPU", 0.0)
    held = scaling.num_workers * scaling.cpus_per_worker
    if held + INGEST_CPUS > total:
        raise ConfigError(
            f"{scaling.num_workers} workers × scaling.cpus_per_worker={scaling.cpus_per_worker:g} leave less than "
            f"{INGEST_CPUS} of Ray's {total:g} CPUs for the tasks that stream the training data, and they would wait "
            f"forever: lower scaling.cpus_per_worker (e.g. {max(0.25, (total - INGEST_CPUS) / scaling.num_workers):g}; "
            "a worker still runs ⌈cpus_per_worker⌉ threads)"
        )


def fault_of(loop_config: dict) -> FaultInjection | None:
    """The ``FaultInjection`` a worker was given, if any."""
    return FaultInjection(**loop_config["fault"]) if loop_config.get("fault") else None


def _storage(uri: str) -> str:
    """Ray Train wants an absolute local path, or a URI it opens itself."""
    fs, local = io.resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        return str(Path(local).expanduser().resolve())
    return uri
