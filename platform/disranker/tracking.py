"""Experiment tracking with MLflow: the main job is one run, each stage a child run, made from the stage's own lineage
record (``disranker.json``), so the run tree and the lineage cannot disagree.

A stage's child run gets the stage's config as params (dotted keys), its metrics (the loss curve with its steps, dev
metrics per epoch, every final number; a comparison's per model), and as tags its lineage id, its parents' ids, its
output folder and whether this run made it or found it finished (``reused``). The driver logs, after each stage, so
training workers never talk to the tracking server (no rank but the driver's logs). The default store is a SQLite
file beside the outputs, ``<output_dir>/mlflow.db``:

    mlflow ui --backend-store-uri sqlite:///outputs/demo/mlflow.db      # needs the full `mlflow` package
    MlflowClient("sqlite:///outputs/demo/mlflow.db").search_runs(...)    # with the installed mlflow-skinny

A team server is ``tracking.uri: http://mlflow.internal:5000``; ``tracking: null`` turns tracking off.

A stage run alone (its CLI command or job, e.g. ``disranker distill``) logs itself as one run, without a parent, when
MLflow's own ``MLFLOW_TRACKING_URI`` is set (``MLFLOW_EXPERIMENT_NAME`` names the experiment; default disranker): each
stage (training runner, labeling, comparison, evaluation) hands its finished record to ``log_stage_alone``. Inside the
main job the pipeline's tracker logs the stages instead (``in_pipeline``), so a stage is never logged twice.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from numbers import Real
from typing import Any

from disranker import lineage
from disranker.config import ConfigError

# MLflow's limits on one log_batch call and on a param's value.
PARAMS_PER_BATCH, METRICS_PER_BATCH, PARAM_VALUE_CHARS = 100, 1000, 6000
NAME_CHARACTER = re.compile(r"[^/\w.\- :]")  # what MLflow refuses in a metric or param name ("ndcg@10")
_IN_PIPELINE = contextvars.ContextVar("disranker_in_pipeline", default=False)


@dataclass
class TrackingSection:
    uri: str = ""  # "": sqlite:///<output_dir>/mlflow.db for a local output_dir; or a tracking server's URL
    experiment: str = "disranker"

    def resolve_uri(self, output_dir: str) -> str:
        if self.uri:
            return self.uri
        if "://" in output_dir:
            raise ConfigError(f"'tracking.uri' is required when output_dir is a URI ({output_dir}): name a server")
        return f"sqlite:///{output_dir}/mlflow.db"


class Tracker:
    """One parent run for the main job; ``log_stage`` adds a finished stage as its child. With ``params=None``
    there is no parent run: each logged stage is a run of its own (a stage run alone)."""

    def __init__(self, section: TrackingSection, output_dir: str, params: dict[str, Any] | None):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(section.resolve_uri(output_dir))
        experiment = self.client.get_experiment_by_name(section.experiment)
        self.experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(section.experiment)
        )
        self.started = datetime.now().astimezone().replace(microsecond=0)  # records keep whole seconds
        self.parent = None
        if params is not None:
            self.parent = self.client.create_run(self.experiment_id, run_name="pipeline").info.run_id
            self._log(self.parent, params, {}, {"output_dir": output_dir})

    def log_stage(self, name: str, folder: str) -> str | None:
        """A child run from ``folder``'s record; None when the folder has none (a stage that writes no record)."""
        record = lineage.read_lineage(folder)
        if record is None:
            return None
        made = datetime.fromisoformat(record["created_at"])
        tags = {
            **({"mlflow.parentRunId": self.parent} if self.parent else {}),
            "stage": lineage.stage_of(record),
            "lineage_id": record["id"],
            "parents": ",".join(record["parents"]),
            "output_dir": folder,
            # Found finished rather than made by this job (a stage run alone logs what it just made).
            "reused": str(self.parent is not None and made < self.started).lower(),
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        self._log(run, record["config"], record.get("metrics") or {}, {})
        self.client.set_terminated(run)
        return run

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent, status=status)

    def _log(self, run: str, config: dict, metrics: dict, tags: dict) -> None:
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(_name(k), str(v)[:PARAM_VALUE_CHARS]) for k, v in flatten(config).items()]
        points = [Metric(_name(k), float(v), 0, step) for k, v, step in metric_points(metrics)]
        for i in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(run, params=params[i : i + PARAMS_PER_BATCH])
        for i in range(0, len(points), METRICS_PER_BATCH):
            self.client.log_batch(run, metrics=points[i : i + METRICS_PER_BATCH])
        if tags:
            self.client.log_batch(run, tags=[RunTag(k, str(v)) for k, v in tags.items()])


@contextmanager
def in_pipeline() -> Iterator[None]:
    """While the main job runs its stages: they leave their logging to its tracker."""
    token = _IN_PIPELINE.set(True)
    try:
        yield
    finally:
        _IN_PIPELINE.reset(token)


def log_stage_alone(folder: str) -> str | None:
    """Log the record just written in ``folder`` as one run, if ``MLFLOW_TRACKING_URI`` is set and no main job is
    running; the run's id, or None."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or _IN_PIPELINE.get():
        return None
    record = lineage.read_lineage(folder)
    if record is None:
        return None
    section = TrackingSection(uri=uri, experiment=os.environ.get("MLFLOW_EXPERIMENT_NAME") or "disranker")
    return Tracker(section, folder, params=None).log_stage(lineage.stage_of(record), folder)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"training": {"lr": 1e-4}}`` → ``{"training.lr": 1e-4}``; lists stay whole values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def metric_points(metrics: dict) -> list[tuple[str, float, int]]:
    """(name, value, step) of a record's metrics: ``loss_curve`` points at their step, ``dev`` entries at their
    epoch as ``dev.<name>``, and every other number (nested dicts flattened) at step 0."""
    points = [("loss", p["loss"], int(p["step"])) for p in metrics.get("loss_curve", [])]
    for entry in metrics.get("dev", []) or []:
        points += [(f"dev.{k}", v, int(entry["epoch"])) for k, v in entry.items() if k != "epoch" and _number(v)]
    rest = {k: v for k, v in metrics.items() if k not in ("loss_curve", "dev")}
    points += [(k, v, 0) for k, v in flatten(rest).items() if _number(v)]
    return points


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _name(key: str) -> str:
    return NAME_CHARACTER.sub("_", key.replace("@", "_at_"))
