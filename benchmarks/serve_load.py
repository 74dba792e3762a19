"""Load benchmark of the ranking endpoint, beside sentence-transformers' CrossEncoder.predict on the same model.

Starts the app on a local Ray (HTTP on 127.0.0.1 only, a port the OS picks), sends a bounded number of /rank requests
of ``--docs`` documents at each concurrency, and prints p50/p95/p99 latency, requests/s and pairs/s; then scores the
same pairs with ``CrossEncoder.predict`` (same weights, same max_length) and reports its pairs/s and the two rankings'
agreement. Writes everything to ``--out`` as JSON.

    python benchmarks/serve_load.py --requests 24 --concurrency 1 4 8 --out outputs/bench/serve_load.json
    # the int8 ONNX runtime of a trained student, checked against torch on the demo dev split at replica start:
    python benchmarks/serve_load.py --model outputs/demo/distill --runtime onnx-int8 \
        --check-judgments outputs/demo/corpus/judgments/dev.parquet

With ``--runtime onnx-int8`` the JSON also holds the replica's check (``/info``'s runtime): which runtime served and
the int8-vs-torch agreement it measured; the CrossEncoder baseline always runs the torch weights.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from disranker.models.text import WORDS
from disranker.serving.config import RankerArgs
from disranker.serving.scorer import TorchScorer


def make_requests(n: int, docs: int, seed: int = 0) -> list[dict]:
    """Deterministic queries and documents of demo-like length (a 6-word query, a 4-word title, a 30-word summary)."""
    rng = random.Random(seed)
    words = lambda k: " ".join(rng.choices(WORDS, k=k))  # noqa: E731
    return [
        {
            "query": words(6),
            "documents": [{"id": f"d{j}", "title": words(4), "summary": words(30)} for j in range(docs)],
        }
        for _ in range(n)
    ]


def load_level(url: str, payloads: list[dict], concurrency: int) -> dict:
    def send(payload: dict) -> float:
        start = time.perf_counter()
        response = requests.post(f"{url}/rank", json=payload, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = np.array(list(pool.map(send, payloads)))
    elapsed = time.perf_counter() - start
    pairs = sum(len(p["documents"]) for p in payloads)
    p50, p95, p99 = np.percentile(latencies * 1000, [50, 95, 99])
    return {
        "concurrency": concurrency,
        "requests": len(payloads),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "requests_per_s": len(payloads) / elapsed,
        "pairs_per_s": pairs / elapsed,
    }


def cross_encoder_baseline(model_dir: str, payloads: list[dict], max_length: int, batch_size: int) -> dict:
    """CrossEncoder.predict over the same pairs (raw logits: identity activation), timed after one warm-up call."""
    import torch
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(model_dir, num_labels=1, max_length=max_length, activation_fn=torch.nn.Identity())
    pairs = [(p["query"], f"{d['title']}. {d['summary']}") for p in payloads for d in p["documents"]]
    encoder.predict(pairs[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    scores = encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    return {"pairs": len(pairs), "pairs_per_s": len(pairs) / (time.perf_counter() - start), "scores": scores}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:minilm", help="student spec (folder, URI or packaged:minilm)")
    parser.add_argument("--requests", type=int, default=24, help="requests per concurrency level (bounded)")
    parser.add_argument("--docs", type=int, default=50, help="documents per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--replicas", type=int, default=1, help="fixed replica count (min = max)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per replica and for the baseline")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--runtime", choices=["torch", "onnx-int8"], default="torch", help="the endpoint's runtime")
    parser.add_argument("--check-judgments", help="onnx-int8: judgments the replica checks int8 against torch on")
    parser.add_argument("--out", default="outputs/bench/serve_load.json")
    args = parser.parse_args(argv)

    import ray
    import torch
    from ray import serve

    from disranker.serving.app import build_app

    # One copy of the weights for both engines: a bare encoder gets its head here, once, seeded as the endpoint does.
    model_dir = tempfile.mkdtemp(prefix="serve_load_")
    scorer = TorchScorer.load(RankerArgs(model=args.model, max_length=args.max_length))
    scorer.model.save_pretrained(model_dir)
    scorer.tokenizer.save_pretrained(model_dir)
    torch.set_num_threads(args.threads)

    ranker = RankerArgs.model_validate(
        {
            "model": model_dir,
            "max_length": args.max_length,
            "torch_threads": args.threads,
            "num_cpus": 1,
            "max_ongoing_requests": max(args.concurrency) * 2,
            "autoscaling": {"min_replicas": args.replicas, "max_replicas": args.replicas},
            "runtime": args.runtime,
            "onnx": {"check_judgments": args.check_judgments},
        }
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray.init(num_cpus=max(2, args.replicas), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(ranker), name="bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        load_level(url, make_requests(2, args.docs, seed=99), 1)  # warm-up
        levels = [load_level(url, make_requests(args.requests, args.docs), c) for c in args.concurrency]
        served = requests.post(f"{url}/rank", json=make_requests(1, args.docs)[0], timeout=300).json()
        runtime = requests.get(f"{url}/info", timeout=60).json().get("runtime")
    finally:
        serve.shutdown()
        ray.shutdown()

    baseline = cross_encoder_baseline(model_dir, make_requests(args.requests, args.docs), args.max_length, 32)
    served_scores = {r["id"]: r["score"] for r in served["results"]}
    ce = baseline.pop("scores")[: args.docs]
    ours = np.array([served_scores[f"d{j}"] for j in range(args.docs)])
    agreement = {
        "pearson": float(np.corrcoef(ours, ce)[0, 1]),
        "top10_overlap": len(set(np.argsort(-ours)[:10]) & set(np.argsort(-ce)[:10])) / 10,
    }

    print(
        f"model {args.model}, {args.docs} docs/request, {args.requests} requests per level, {args.replicas} replica(s)"
    )
    print(f"runtime: {runtime}")
    print(f"{'concurrency':>11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7} {'pairs/s':>8}")
    for level in levels:
        print(
            f"{level['concurrency']:>11} {level['p50_ms']:>8.0f} {level['p95_ms']:>8.0f} {level['p99_ms']:>8.0f}"
            f" {level['requests_per_s']:>7.2f} {level['pairs_per_s']:>8.0f}"
        )
    best = max(level["pairs_per_s"] for level in levels)
    print(f"CrossEncoder.predict (batch 32, {args.threads} threads): {baseline['pairs_per_s']:.0f} pairs/s")
    print(f"endpoint best / CrossEncoder: {best / baseline['pairs_per_s']:.2f}x; agreement {agreement}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "args": vars(args),
                "runtime": runtime,
                "levels": levels,
                "cross_encoder": baseline,
                "agreement": agreement,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
