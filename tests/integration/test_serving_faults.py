"""The endpoint when things go wrong or change underneath it, on a local Ray over real HTTP: the faster runtimes
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


# tolerance: how far a request's scores may move when it shares batches. int8 activations move with the batch's other
# rows (by up to 0.03 here, about as much as this tiny model's documents differ); OpenVINO's floats do not move.
@pytest.mark.parametrize(
    ("runtime", "file_key", "file_name", "concurrent_batches", "tolerance"),
    [("onnx-int8", "onnx_file", "model.int8.onnx", 1, 0.05), ("openvino", "openvino_file", "model.xml", 4, 1e-5)],
)
def test_faster_runtime_is_checked_and_reported(
    base_url, ranker_args, tmp_path_factory, runtime, file_key, file_name, concurrent_batches, tolerance
):
    """A second application on the same Serve: the student in a faster runtime, checked against torch at replica
    start (floors for a 32-wide random BERT, see tests/unit/test_onnx_runtime.py) and reported by /info. Concurrent
    requests (OpenVINO scores several batches at once) get the scores each gets alone."""
    from ray import serve

    cache = str(tmp_path_factory.mktemp(runtime))
    fast_args = RankerArgs.model_validate(
        {
            **ranker_args.model_dump(),
            "runtime": runtime,
            "check": {"min_spearman": 0.8, "min_top10_agreement": 0.6, "cache_dir": cache},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
            "batching": {"max_batch_size": 16, "batch_wait_timeout_s": 0.1},
        }
    )
    url = f"{base_url}/{runtime}"
    serve.run(build_app(fast_args), name=f"ranker-{runtime}", route_prefix=f"/{runtime}")
    try:
        answered = info(url)
        assert answered["runtime"]["active"] == runtime and answered["runtime"]["reason"] is None
        assert answered["runtime"]["check"]["spearman"] >= 0.8 and answered["runtime"][file_key].endswith(file_name)
        assert answered["batching"]["max_concurrent_batches"] == concurrent_batches
        # Each request its own query and documents, so that scores handed to the wrong request would show.
        payloads = [{"query": f"{QUERY} {i}", "documents": DOCS[i % 4 :] + DOCS[: i % 4]} for i in range(12)]
        alone = [_scores(rank(url, payload)) for payload in payloads]
        for _ in range(3):  # rounds of 12 at once, until batches were seen scoring side by side (or three rounds)
            before = info(url)["counters"]["batches"]
            with ThreadPoolExecutor(12) as pool:
                together = list(pool.map(lambda payload: _scores(rank(url, payload)), payloads))
            counters = info(url)["counters"]
            assert counters["batches"] - before < 12  # they shared batches
            for got, expected in zip(together, alone, strict=True):
                assert got == pytest.approx(expected, abs=tolerance)
            if counters["most_batches_at_once"] > 1:
                break
        # OpenVINO's replica scores batches side by side (three test runs of three saw it in the first round); the
        # others never do.
        most = counters["most_batches_at_once"]
        assert (most > 1) == (concurrent_batches > 1) and most <= concurrent_batches
        assert info(base_url)["runtime"] == {"requested": "torch", "active": "torch"}
    finally:
        serve.delete(f"ranker-{runtime}")


def _scores(response: requests.Response) -> dict[str, float]:
    assert response.status_code == 200, response.text
    return {result["id"]: result["score"] for result in response.json()["results"]}


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
