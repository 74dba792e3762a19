"""Fixtures of the endpoint's integration tests: one tiny student and one Serve application per test module."""

from __future__ import annotations

import pytest
from tests.serving_client import APP, TOKEN, free_port

from disranker.serving.app import GRPC_TRANSPORT_ENV, TOKEN_ENV, build_app
from disranker.serving.config import RankerArgs
from disranker.testing.tiny import build_tiny_student


@pytest.fixture(scope="module")
def api_token(monkeypatch_module):
    """Set before Ray starts, so the replicas (children of this Ray) see it."""
    monkeypatch_module.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture(scope="module")
def grpc_transport(monkeypatch_module):
    """Serve's gRPC data plane, as `disranker serve` starts it: set before Ray starts, so its processes inherit it."""
    for name, value in GRPC_TRANSPORT_ENV.items():
        monkeypatch_module.setenv(name, value)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    return build_tiny_student(tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def ranker_args(student_dir) -> RankerArgs:
    return RankerArgs.model_validate(
        {
            "model": student_dir,
            "max_length": 64,
            "max_documents": 8,
            "max_body_bytes": 4096,
            "num_cpus": 0.5,
            "torch_threads": 1,
            # A long upscale delay keeps one replica, so /info's counters cover every request of the batching test.
            "autoscaling": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 3, "upscale_delay_s": 600},
            "batching": {"max_batch_size": 64, "batch_wait_timeout_s": 0.25},
        }
    )


@pytest.fixture(scope="module")
def base_url(api_token, grpc_transport, ray_start_2_cpus, ranker_args):
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(ranker_args), name=APP, route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
