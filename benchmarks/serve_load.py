"""The ranking endpoint per runtime against sentence-transformers' backends, on the same pairs, threads and machine.

Requests are real demo test queries, ``--docs`` documents each (a query's judged documents, then the next queries'
to make up the number). For each ``--runtimes`` entry the endpoint is started on a local Ray (HTTP on 127.0.0.1, one
model replica with ``--threads`` threads), checks its runtime against torch on the dev split at start (its gate), and
answers ``--requests`` requests at each concurrency. Then the anchors score the same pairs: ``CrossEncoder.predict``
on torch in this venv, and sentence-transformers' ONNX, ONNX int8 and OpenVINO backends in the venvs ``make anchors``
builds (``st_anchor.py``). Every runtime's scores are compared with torch fp32's on the same requests (Spearman over
all pairs, mean top-10 agreement per request); where a 50-document request's time goes is measured in-process.

    make anchors && python benchmarks/serve_load.py --out benchmarks/results/serve_load.json

Prints one table and writes ``--out``: per runtime ``pairs_per_s``, ``over_crossencoder`` (÷ CrossEncoder torch in
the same run), ``over_best_st_backend``, ``spearman``, ``top10``, ``gate_passed``, the p50 / p99 of one request,
the time breakdown, and per concurrency level the CPU milliseconds per request of each process role (model replica,
ingress, HTTP proxy, Ray's own processes, this load client).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests

from disranker import lineage
from disranker.serving.agreement import check_agreement
from disranker.serving.config import BatchingArgs, RankerArgs
from disranker.serving.scorer import TorchScorer
from serve_anchors import ANCHORS, breakdown, calibration_pairs, cross_encoder, make_requests, run_anchor

MIN_SPEARMAN, MIN_TOP10 = 0.99, 0.95  # the agreement a runtime must keep with torch fp32 here (issue's floors)


# Ray names a Serve replica's process after its deployment (``ray::ServeReplica:<app>:<deployment>``); first match wins.
ROLES = (("RankerIngress", "ingress"), ("Ranker", "model replica"), ("ProxyActor", "HTTP proxy"))


def cpu_seconds_by_role() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process (the load client, with Ray's driver threads) and of every
    process below it (the local Ray this benchmark started), summed by role."""
    me = psutil.Process()
    totals: dict[str, float] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times, command = process.cpu_times(), " ".join(process.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
        role = "load client" if process.pid == me.pid else next((r for key, r in ROLES if key in command), "Ray's own")
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def load_level(url: str, payloads: list[dict], concurrency: int) -> tuple[dict, list[list[float]]]:
    """``payloads`` sent with ``concurrency`` in flight; the timings, each role's CPU milliseconds per request (where
    the machine's cores went), and each request's scores in document order."""

    def send(payload: dict) -> tuple[float, list[float]]:
        start = time.perf_counter()
        response = requests.post(f"{url}/rank", json=payload, timeout=300)
        response.raise_for_status()
        by_id = {r["id"]: r["score"] for r in response.json()["results"]}
        return time.perf_counter() - start, [by_id[d["id"]] for d in payload["documents"]]

    cpu_before, start = cpu_seconds_by_role(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(send, payloads))
    elapsed, cpu_after = time.perf_counter() - start, cpu_seconds_by_role()
    latencies = np.array([seconds for seconds, _ in answers]) * 1000
    p50, p99 = np.percentile(latencies, [50, 99])
    pairs = sum(len(p["documents"]) for p in payloads)
    level = {"concurrency": concurrency, "requests": len(payloads), "p50_ms": p50, "p99_ms": p99,
             "pairs_per_s": pairs / elapsed,
             "cpu_ms_per_request": {role: (cpu_after[role] - cpu_before.get(role, 0.0)) * 1000 / len(payloads)
                                    for role in cpu_after}}  # fmt: skip
    return level, [scores for _, scores in answers]


def endpoint(model_dir: str, runtime: str, args, payloads: list[dict]) -> dict:
    """One runtime behind the endpoint: its levels, its scores at concurrency 1, and its gate (/info)."""
    from ray import serve

    from disranker.serving.app import build_app

    ranker = RankerArgs.model_validate(
        {
            "model": model_dir,
            "runtime": runtime,
            "max_length": args.max_length,
            "torch_threads": args.threads,
            "forward_batch_size": args.forward_batch_size,
            "num_cpus": 1,
            "max_ongoing_requests": max(args.concurrency) * 2,
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
            "batching": {"max_batch_size": args.max_batch_size, "batch_wait_timeout_s": args.batch_wait_timeout_s},
            "check": {"check_judgments": args.check_judgments, "cache_dir": args.cache_dir},
        }
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(ranker), name="bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        load_level(url, payloads[:2], 1)  # warm-up
        levels, scores = [], None
        for concurrency in args.concurrency:
            level, answered = load_level(url, payloads, concurrency)
            levels.append(level)
            scores = scores or answered
        gate = requests.get(f"{url}/info", timeout=60).json()["runtime"]
    finally:
        serve.shutdown()
    best = max(levels, key=lambda level: level["pairs_per_s"])
    first = levels[0]
    return {"kind": "endpoint", "pairs_per_s": best["pairs_per_s"], "best_concurrency": best["concurrency"],
            "request_p50_ms": first["p50_ms"], "request_p99_ms": first["p99_ms"], "levels": levels,
            "replica_gate": gate, "scores": [s for request in scores for s in request]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo/distill", help="student spec (folder, URI or packaged:minilm)")
    parser.add_argument("--judgments", default="outputs/demo/corpus/judgments/test.parquet", help="request source")
    parser.add_argument("--check-judgments", default="outputs/demo/corpus/judgments/dev.parquet",
                        help="the pairs each replica checks its runtime against torch on (its gate)")  # fmt: skip
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx-int8", "openvino", "openvino-int8"])
    parser.add_argument("--anchors", nargs="*", default=list(ANCHORS), help="sentence-transformers backends")
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--docs", type=int, default=50, help="documents per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=2, help="threads of the replica and of every anchor")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--forward-batch-size", type=int, default=RankerArgs().forward_batch_size)
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=BatchingArgs().batch_wait_timeout_s)
    parser.add_argument("--cache-dir", default=None, help="exported graphs (default: the platform's model cache)")
    parser.add_argument("--out", default="outputs/bench/serve_load.json")
    args = parser.parse_args(argv)

    import ray
    import torch

    from disranker.serving.app import start_local_ray

    torch.set_num_threads(args.threads)
    payloads = make_requests(args.judgments, args.requests, args.docs)
    # One copy of the weights for every engine: a bare encoder gets its head here, once, seeded as the endpoint does.
    model_dir = tempfile.mkdtemp(prefix="serve_load_")
    scorer = TorchScorer.load(RankerArgs(model=args.model, max_length=args.max_length, torch_threads=args.threads))
    scorer.model.save_pretrained(model_dir)
    scorer.tokenizer.save_pretrained(model_dir)
    if scorer.lineage:  # the student's record goes along: int8 runtimes calibrate on its training table, as served
        Path(model_dir, lineage.FILENAME).write_text(json.dumps(scorer.lineage))

    results = {}
    start_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)  # as `disranker serve` starts it
    try:
        for runtime in args.runtimes:
            results[runtime] = endpoint(model_dir, runtime, args, payloads)
            results[runtime]["breakdown"] = breakdown(model_dir, runtime, args, payloads[0], results[runtime])
            print(f"{runtime}: {results[runtime]['pairs_per_s']:.0f} pairs/s", flush=True)
    finally:
        ray.shutdown()
    results["st-torch"] = cross_encoder(model_dir, payloads, args)
    calibration = calibration_pairs(scorer, args)
    for backend in args.anchors:
        results[f"st-{backend}"] = run_anchor(backend, model_dir, payloads, calibration, args)

    reference = np.array(results["torch"]["scores"]) if "torch" in results else np.array(results["st-torch"]["scores"])
    request_of = np.repeat(np.arange(len(payloads)), [len(p["documents"]) for p in payloads])
    for name, result in results.items():
        if "scores" not in result:
            continue
        agreement = check_agreement(reference, np.array(result.pop("scores")), request_of)
        result["spearman"], result["top10"] = agreement["spearman"], agreement["top10_agreement"]
        agrees = result["spearman"] >= MIN_SPEARMAN and result["top10"] >= MIN_TOP10
        served = result["kind"] != "endpoint" or result["replica_gate"]["active"] == name
        result["gate_passed"] = bool(agrees and served)
    anchor = results["st-torch"]["pairs_per_s"]
    st = {name: r["pairs_per_s"] for name, r in results.items() if name.startswith("st-") and "pairs_per_s" in r}
    best_st = max(st, key=st.get)
    for result in results.values():
        if "pairs_per_s" in result:
            result["over_crossencoder"] = result["pairs_per_s"] / anchor
            result["over_best_st_backend"] = result["pairs_per_s"] / st[best_st]

    print(f"\n{args.docs} documents per request from {args.judgments}, {args.threads} threads, {_cpu()}")
    print(f"{'runtime':<18} {'pairs/s':>8} {'x CE':>6} {'x best ST':>9} {'p50 ms':>7} {'p99 ms':>7} {'Spearman':>8}"
          f" {'top-10':>6}  gate")  # fmt: skip
    for name, r in results.items():
        if "pairs_per_s" not in r:
            print(f"{name:<18} skipped: {r['skipped']}")
            continue
        print(f"{name:<18} {r['pairs_per_s']:>8.0f} {r['over_crossencoder']:>6.2f} {r['over_best_st_backend']:>9.2f}"
              f" {r['request_p50_ms']:>7.0f} {r['request_p99_ms']:>7.0f} {r['spearman']:>8.4f} {r['top10']:>6.3f}"
              f"  {'passed' if r['gate_passed'] else 'FAILED'}")  # fmt: skip
    for name, result in results.items():
        if "breakdown" in result:
            print(
                f"{name}: one request's time: " + ", ".join(f"{k} {v:.0f} ms" for k, v in result["breakdown"].items())
            )
    report = {"args": vars(args), "cpu": _cpu(), "best_st_backend": best_st, "runtimes": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


def _cpu() -> str:
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name")), "?")
    flags = next((line for line in info.splitlines() if line.startswith("Flags")), "")
    extras = [flag for flag in ("amx_bf16", "avx512_bf16", "avx512_vnni") if f" {flag}" in flags]
    return f"{name} ({', '.join(extras) or 'no AMX / AVX-512 BF16 / VNNI'})"


if __name__ == "__main__":
    main()
