"""The endpoint when things go wrong or change underneath it, on a local Ray over real HTTP: the int8 ONNX runtime
checked at replica start, overload answered with fast 503s, and a model replica killed under load. The replica-kill
test runs last: it replaces the replica the others use.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from tests.serving_client import AUTH, DOCS, QUERY, deployment_details, info, rank

from disranker.serving.app import build_app
from disranker.serving.config import RankerArgs

pytestmark = pytest.mark.integration


def test_onnx_int8_runtime_is_checked_and_reported(base_url, ranker_args, tmp_path_factory):
    """A second application on the same Serve: the student as its int8 ONNX graph, checked against torch at replica
    start (floors for a 32-wide random BERT, see tests/unit/test_onnx_runtime.py) and reported by /info."""
    from ray import serve

    cache = str(tmp_path_factory.mktemp("onnx"))
    onnx_args = RankerArgs.model_validate(
        {
            **ranker_args.model_dump(),
            "runtime": "onnx-int8",
            "check": {"min_spearman": 0.8, "min_top10_agreement": 0.6, "cache_dir": cache},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        }
    )
    serve.run(build_app(onnx_args), name="ranker-onnx", route_prefix="/onnx")
    try:
        runtime = info(f"{base_url}/onnx")["runtime"]
        assert runtime["active"] == "onnx-int8" and runtime["reason"] is None
        assert runtime["check"]["spearman"] >= 0.8 and runtime["onnx_file"].endswith("model.int8.onnx")
        response = rank(f"{base_url}/onnx", {"query": QUERY, "documents": DOCS})
        assert response.status_code == 200, response.text
        assert sorted(r["id"] for r in response.json()["results"]) == sorted(d["id"] for d in DOCS)
        assert info(base_url)["runtime"] == {"requested": "torch", "active": "torch"}
    finally:
        serve.delete("ranker-onnx")


def test_overload_gets_a_fast_503_with_retry_after(base_url, ranker_args):
    """Before: max_queued_requests was unset (unbounded), so 48 clients got no 503 and a 29 s p50."""
    from ray import serve

    tight = RankerArgs.model_validate(
        {
            **ranker_args.model_dump(),
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "retry_after_s": 2,
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        }
    )
    serve.run(build_app(tight), name="ranker-tight", route_prefix="/tight")
    try:
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: rank(f"{base_url}/tight", {"query": QUERY, "documents": DOCS}),
                                      range(12)))  # fmt: skip
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        assert all(r.headers.get("retry-after") == "2" for r in responses if r.status_code == 503)
    finally:
        serve.delete("ranker-tight")


def test_killed_replica_is_replaced(base_url):
    import ray

    killed = info(base_url)["replica"]
    (replica,) = [r for r in deployment_details()["replicas"] if r["state"] == "RUNNING"]
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:  # requests in flight while the replica dies; failures here are expected and counted
        for _ in range(200):
            if stop.is_set():
                return
            try:
                statuses.append(rank(base_url, {"query": QUERY, "documents": DOCS[:2]}).status_code)
            except requests.RequestException:
                statuses.append(-1)

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(0.5)
    ray.kill(ray.get_actor(replica["actor_name"], namespace="serve"), no_restart=True)

    new_replica = None
    for _ in range(90):  # the controller notices the death and starts a replacement (seconds here)
        time.sleep(1)
        try:
            response = requests.get(f"{base_url}/info", headers=AUTH, timeout=10)
        except requests.RequestException:
            continue
        if response.status_code == 200 and response.json()["replica"] != killed:
            new_replica = response.json()["replica"]
            break
    stop.set()
    sender.join(timeout=120)
    assert new_replica is not None, "no replacement replica answered within 90 s"
    # Before: the requests in flight on the killed replica got Serve's 500; the ingress now sends them again.
    assert statuses and set(statuses) == {200}, statuses
    for _ in range(3):
        assert rank(base_url, {"query": QUERY, "documents": DOCS}).status_code == 200
