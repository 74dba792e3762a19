"""Load against a local ranking endpoint while it is overloaded or loses its replica (``benchmarks/faults.py``)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from disranker.serving.app import build_app
from disranker.serving.config import RankerArgs

WORDS = "the a small large river stone cat dog tree wood bird song night day house road light water".split()


def _body(docs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    text = lambda n: " ".join(rng.choice(WORDS, n))  # noqa: E731
    return {"query": text(6), "documents": [{"id": str(i), "title": text(3), "summary": text(20)} for i in range(docs)]}


class Endpoint:
    """One replica of ``model`` on a local Ray, on a free port; ``post`` returns (status, seconds, Retry-After)."""

    def __init__(self, model: str, docs: int, **args):
        import ray
        from ray import serve

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": self.port, "request_timeout_s": 30})
        ranker = RankerArgs.model_validate({"model": model, "max_length": 128, "num_cpus": 1, "torch_threads": 2,
                                            "autoscaling": {"min_replicas": 1, "max_replicas": 1}, **args})  # fmt: skip
        serve.run(build_app(ranker), name="faults", route_prefix="/")
        self.bodies = [_body(docs, seed) for seed in range(16)]

    def post(self, i: int) -> tuple[int, float, str | None]:
        started = time.perf_counter()
        try:
            response = requests.post(f"http://127.0.0.1:{self.port}/rank", json=self.bodies[i % 16], timeout=60)
            status, retry = response.status_code, response.headers.get("retry-after")
        except requests.RequestException:
            status, retry = -1, None
        return status, time.perf_counter() - started, retry

    def close(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def capacity(endpoint: Endpoint, seconds: float = 10.0, clients: int = 4) -> float:
    """Requests per second answered by ``clients`` closed-loop clients."""
    done, deadline = [], time.monotonic() + seconds

    def client(k: int) -> None:
        while time.monotonic() < deadline:
            done.append(endpoint.post(k)[0])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(status == 200 for status in done) / seconds


def overload(model: str, docs: int, seconds: float) -> dict:
    endpoint = Endpoint(model, docs)
    try:
        rate = capacity(endpoint)
        offered = 10 * rate
        with ThreadPoolExecutor(128) as pool:
            futures, started = [], time.monotonic()
            for i in range(int(offered * seconds)):  # open loop: one request every 1 / offered seconds
                time.sleep(max(0.0, started + i / offered - time.monotonic()))
                futures.append(pool.submit(endpoint.post, i))
            results = [f.result() for f in futures]
    finally:
        endpoint.close()
    statuses = np.array([s for s, _, _ in results])
    answered = [t for s, t, _ in results if s == 200]
    return {
        "capacity_rps": round(rate, 2),
        "offered_rps": round(offered, 2),
        "seconds": seconds,
        "sent": len(results),
        "answered": int((statuses == 200).sum()),
        "rejected_503": int((statuses == 503).sum()),
        "retry_after_on_503": sorted({r for s, _, r in results if s == 503} - {None}),
        "other_5xx": int(((statuses >= 500) & (statuses != 503)).sum()),
        "failed_connections": int((statuses == -1).sum()),
        "p99_answered_s": round(float(np.percentile(answered, 99)), 2) if answered else None,
        "max_503_s": round(max((t for s, t, _ in results if s == 503), default=0.0), 3),
    }


def replica_kill(model: str, docs: int, seconds: float = 40.0, kill_at_s: float = 5.0) -> dict:
    import ray
    from ray.serve.context import _get_global_client

    endpoint = Endpoint(model, docs)
    log: list[tuple[float, int]] = []
    try:
        started = time.monotonic()

        def client(k: int) -> None:
            while time.monotonic() - started < seconds:
                status, _, _ = endpoint.post(k)
                log.append((time.monotonic() - started, status))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(kill_at_s)
        details = _get_global_client().get_serve_details()["applications"]["faults"]["deployments"]["Ranker"]
        (replica,) = [r for r in details["replicas"] if r["state"] == "RUNNING"]
        ray.kill(ray.get_actor(replica["actor_name"], namespace="serve"), no_restart=True)
        killed_at = time.monotonic() - started
        for thread in threads:
            thread.join()
    finally:
        endpoint.close()
    after = [(t, s) for t, s in log if t >= killed_at]
    failed = [(t, s) for t, s in after if s != 200]
    recovered = next((t for t, s in after if s == 200 and t > (failed[-1][0] if failed else killed_at)), None)
    return {
        "requests": len(log),
        "failed": len(failed),
        "failed_statuses": sorted({s for _, s in failed}),
        "seconds_to_recover": round(recovered - killed_at, 1) if recovered is not None else None,
        "answered_after_kill": sum(s == 200 for _, s in after),
    }
