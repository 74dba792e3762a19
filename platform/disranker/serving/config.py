"""What the ranking endpoint is configured with: ``RankerArgs`` (the Serve application's ``args``) and the local
start-up settings read from a Serve config file.

``RankerArgs`` is a pydantic model because Ray Serve builds it: ``serve run serve/config.yaml`` passes the YAML's
``args`` mapping to ``disranker.serving.app:build_app``, which validates it here (unknown keys are an error, as in
every disranker config). The same file drives ``disranker serve --config serve/config.yaml`` through
``load_serve_file``, so one YAML describes the endpoint for ``serve run``, ``serve deploy``, the CLI and KubeRay.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from disranker.config import ConfigError, apply_override
from disranker.models.text import STUDENT_MAX_LENGTH
from disranker.serving.schemas import RequestLimits

BUILDER_IMPORT_PATH = "disranker.serving.app:build_app"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingArgs(_Strict):
    """Dynamic batching over (query, document) pairs; sent as the deployment's ``user_config``, so a new value reaches
    running replicas through ``reconfigure()`` without restarting them."""

    max_batch_size: int = Field(64, ge=1)  # pairs per model call; concurrent requests share a call up to this many
    batch_wait_timeout_s: float = Field(0.01, ge=0)  # how long the first pair of a batch waits for company


class AutoscalingArgs(_Strict):
    """Serve's ``autoscaling_config`` (replicas follow the number of requests in flight per replica)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0)  # requests in flight per replica that the autoscaler aims at
    upscale_delay_s: float = Field(30.0, ge=0)  # Serve's defaults; a burst shorter than this adds no replica
    downscale_delay_s: float = Field(600.0, ge=0)

    @model_validator(mode="after")
    def _replica_range(self) -> AutoscalingArgs:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas={self.min_replicas} is above max_replicas={self.max_replicas}")
        return self


class RuntimeCheckArgs(_Strict):
    """For every runtime but torch (``onnx-int8``, ``openvino``, ``openvino-int8``): the student is served by that
    runtime only when a check at replica start shows it ranks like the torch model (``serving.agreement``); otherwise
    the replica serves torch and /info says why.

    The check scores the same pairs with both runtimes: from ``check_judgments`` when given; else from the dev split
    recorded in the student's lineage (``disranker.json`` → ``config.data.dev``) when it can be read; else from a
    built-in set of synthetic pairs (deterministic word salad, 16 queries x 20 documents), which /info names as such.
    ``openvino-int8`` measures its activation ranges on other pairs: ``calibration_judgments`` when given, else the
    student's training table from its lineage, else other synthetic pairs.
    """

    check_judgments: str | None = None  # Parquet table or URI with query_id, query, doc_id, title, summary
    check_max_queries: int = Field(50, ge=1)  # the check table's first N queries, each with all its documents
    min_spearman: float = Field(0.99, ge=-1, le=1)  # rank correlation of the two runtimes' scores over all pairs
    min_top10_agreement: float = Field(0.9, ge=0, le=1)  # mean over queries of |top-10 torch ∩ top-10 other| / 10
    calibration_judgments: str | None = None  # the same columns; the pairs openvino-int8 is calibrated on
    calibration_max_queries: int = Field(32, ge=1)  # that table's first N queries
    cache_dir: str | None = None  # exported graphs; None: $DISRANKER_CACHE/models/onnx and models/openvino


class RankerArgs(_Strict):
    """The ranking application's arguments (the ``args`` of its Serve config)."""

    model: str = "packaged:minilm"  # student spec: local HF folder, URI (s3://…) or packaged:minilm
    # onnx-int8 needs `pip install 'disranker[onnx]'`, openvino and openvino-int8 `pip install 'disranker[openvino]'`
    runtime: Literal["torch", "onnx-int8", "openvino", "openvino-int8"] = "torch"
    max_length: int = Field(STUDENT_MAX_LENGTH, ge=8)  # tokens per pair; the longer side (mostly the document) is cut
    # Pairs per forward pass inside one batch (length-sorted). 16, not 32: 64 requests of 50 documents scored in one
    # process at 936 pairs/s against ~800 with OpenVINO, 235 against 207 with torch, 648 against 600 with int8, at 4
    # requests in flight on a 2-core AMX Xeon (64: 490 with OpenVINO); the endpoint served 722/725 against 635/614.
    forward_batch_size: int = Field(16, ge=1)
    torch_threads: int | None = Field(None, ge=1)  # intra-op threads per replica; None: match num_cpus
    max_documents: int = Field(100, ge=1)  # documents per /rank request (and the largest top_k)
    max_query_chars: int = Field(1_000, ge=1)  # longer queries get a 422
    max_document_chars: int = Field(20_000, ge=1)  # title + summary of one document; longer gets a 422
    max_body_bytes: int = Field(1_000_000, ge=1024)  # request body limit (413 above it)
    num_cpus: float = Field(1.0, gt=0)  # CPUs reserved per replica
    max_ongoing_requests: int = Field(16, ge=1)  # requests one model replica accepts at once; more wait in a queue
    # Requests waiting in each ingress replica for a model replica; more get a 503 with Retry-After at once instead of
    # a growing latency (Serve's default, -1, queues without bound).
    max_queued_requests: int = Field(32, ge=1)
    retry_after_s: float = Field(1.0, ge=0)  # the Retry-After of those 503s
    # HTTP replicas in front of the model replicas (auth, body checks, a retry when a model replica dies): light work,
    # no CPU reserved.
    ingress_replicas: int = Field(1, ge=1)
    batching: BatchingArgs = BatchingArgs()
    autoscaling: AutoscalingArgs = AutoscalingArgs()
    # The check every runtime but torch passes at replica start; ``onnx`` is its former name, still read.
    check: RuntimeCheckArgs = Field(RuntimeCheckArgs(), validation_alias=AliasChoices("check", "onnx"))

    def threads(self) -> int:
        return self.torch_threads or max(1, int(self.num_cpus))

    def limits(self) -> RequestLimits:
        return RequestLimits(self.max_documents, self.max_query_chars, self.max_document_chars)


class LocalServe(BaseModel):
    """What ``disranker serve`` starts: one application from a Serve config file, on this machine."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    request_timeout_s: float | None = None  # http_options.request_timeout_s: a longer request is cut off (408)
    app_name: str = "disranker"
    route_prefix: str = "/"
    args: RankerArgs = RankerArgs()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.route_prefix.rstrip('/')}"


def load_serve_file(path: str | Path, overrides: Sequence[str] = ()) -> LocalServe:
    """Read a Serve config file (``http_options`` + ``applications``) and pick the disranker application.

    ``overrides`` are ``key=value`` pairs applied to that application's ``args`` (``batching.max_batch_size=32``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a Serve config is a mapping with 'applications', got {type(data).__name__}")
    apps = [app for app in data.get("applications") or [] if app.get("import_path") == BUILDER_IMPORT_PATH]
    if not apps:
        raise ConfigError(f"{path}: no application with import_path {BUILDER_IMPORT_PATH!r} under 'applications'")
    app: dict[str, Any] = apps[0]
    args = dict(app.get("args") or {})
    for override in overrides:
        apply_override(args, override)
    http = data.get("http_options") or {}
    try:
        return LocalServe(
            host=http.get("host", "127.0.0.1"),
            port=http.get("port", 8000),
            request_timeout_s=http.get("request_timeout_s"),
            app_name=app.get("name", "disranker"),
            route_prefix=app.get("route_prefix", "/"),
            args=RankerArgs.model_validate(args),
        )
    except ValueError as exc:  # pydantic's ValidationError names the field (e.g. "batching.max_batch_size")
        raise ConfigError(f"{path}: {exc}") from exc
