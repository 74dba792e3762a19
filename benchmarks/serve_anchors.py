"""What ``serve_load.py`` compares the endpoint with and how it explains its time: the requests built from real
judged queries, sentence-transformers' CrossEncoder (torch, here) and its other backends (``st_anchor.py`` in the
anchor venvs), and the per-stage time of one request."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from disranker.data import io
from disranker.models.text import student_document
from disranker.serving.config import RankerArgs

REPO = Path(__file__).resolve().parents[1]
# sentence-transformers backend → the venv ``make anchors`` installs it in.
ANCHORS = {
    "onnx": ".venv-anchors-onnx",
    "onnx-int8": ".venv-anchors-onnx",
    "openvino": ".venv-anchors-openvino",
    "openvino-int8": ".venv-anchors-openvino",
}
REPEATS = 5


def make_requests(judgments: str, n: int, docs: int) -> list[dict]:
    """``n`` requests of ``docs`` documents: query i's judged documents, then those of the queries after it."""
    table = io.read_table(judgments, columns=["query_id", "query", "doc_id", "title", "summary"]).to_pylist()
    order = list(dict.fromkeys(row["query_id"] for row in table))
    by_query = {qid: [row for row in table if row["query_id"] == qid] for qid in order[: n + docs]}
    if len(order) < n:
        raise ValueError(f"{judgments} has {len(order)} queries; {n} requests need as many")
    payloads = []
    for i in range(n):
        rows = [row for qid in order[i : i + docs] for row in by_query.get(qid, [])][:docs]
        documents = [{"id": f"d{j}", "title": r["title"], "summary": r["summary"]} for j, r in enumerate(rows)]
        payloads.append({"query": by_query[order[i]][0]["query"], "documents": documents})
    return payloads


def _pairs(payload: dict) -> list[tuple[str, str]]:
    return [(payload["query"], student_document(d["title"], d["summary"])) for d in payload["documents"]]


def cross_encoder(model_dir: str, payloads: list[dict], args) -> dict:
    """``CrossEncoder.predict`` on torch (this venv's sentence-transformers): all pairs at batch 32, then each
    request."""
    import torch
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(model_dir, num_labels=1, max_length=args.max_length, activation_fn=torch.nn.Identity())
    pairs = [pair for payload in payloads for pair in _pairs(payload)]
    encoder.predict(pairs[:32], batch_size=32, show_progress_bar=False)
    start = time.perf_counter()
    scores = encoder.predict(pairs, batch_size=32, show_progress_bar=False)
    bulk_s = time.perf_counter() - start
    latencies = []
    for payload in payloads:
        start = time.perf_counter()
        encoder.predict(_pairs(payload), batch_size=32, show_progress_bar=False)
        latencies.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"kind": "sentence-transformers", "pairs_per_s": len(pairs) / bulk_s, "request_p50_ms": p50,
            "request_p99_ms": p99, "scores": np.asarray(scores, dtype=float).ravel().tolist()}  # fmt: skip


def calibration_pairs(scorer, args) -> list[tuple[str, str]]:
    """The (query, document) pairs the endpoint's int8 runtimes calibrate on (``agreement.calibration_set``: the
    student's own training table), for a static int8 anchor to calibrate on the same."""
    from disranker.serving.agreement import calibration_set

    table, _ = calibration_set(RankerArgs(model=args.model), scorer.lineage)
    rows = table.to_pylist()
    return [(row["query"], student_document(row["title"], row["summary"])) for row in rows]


def run_anchor(backend: str, model_dir: str, payloads: list[dict], calibration: list, args) -> dict:
    """One sentence-transformers backend in its venv (``st_anchor.py``); skipped, with why, when it is not there."""
    python = REPO / ANCHORS[backend] / "bin" / "python"
    if not python.exists():
        return {"kind": "sentence-transformers", "skipped": f"{python.parent.parent} is missing: run `make anchors`"}
    with tempfile.TemporaryDirectory() as scratch:
        pairs, out = Path(scratch) / "pairs.json", Path(scratch) / "anchor.json"
        given = {"requests": [_pairs(payload) for payload in payloads], "calibration": calibration}
        pairs.write_text(json.dumps(given))
        command = [str(python), str(REPO / "benchmarks" / "st_anchor.py"), "--model", model_dir, "--pairs", str(pairs),
                   "--backend", backend, "--threads", str(args.threads), "--max-length", str(args.max_length),
                   "--out", str(out)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            return {"kind": "sentence-transformers", "skipped": f"failed: {done.stderr.strip().splitlines()[-1]}"}
        return {"kind": "sentence-transformers", **json.loads(out.read_text())}


def breakdown(model_dir: str, runtime: str, args, payload: dict, served: dict) -> dict[str, float]:
    """Where one request's time goes (median ms of a few calls in this process, with the runtime the replica served):
    the request's tokenisation (``PairEncoder.encode``, in the request's thread), padding the batch, the forward
    passes, and the rest of the endpoint's p50 at concurrency 1 (HTTP, JSON, the ingress hop and the batch queue)."""
    from disranker.serving.runtime import load_scorer

    active = served["replica_gate"]["active"]
    check = {"check_judgments": args.check_judgments, "cache_dir": args.cache_dir}
    scorer = load_scorer(RankerArgs(model=model_dir, runtime=active, max_length=args.max_length,
                                    torch_threads=args.threads, forward_batch_size=args.forward_batch_size,
                                    check=check))  # fmt: skip
    query = payload["query"]
    titles, summaries = [d["title"] for d in payload["documents"]], [d["summary"] for d in payload["documents"]]

    def median_ms(call) -> float:
        call()
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    encoder = scorer.encoder
    pairs = encoder.encode(query, titles, summaries).pairs
    padded = encoder.pad(pairs)
    encode = median_ms(lambda: encoder.encode(query, titles, summaries))
    pad = median_ms(lambda: encoder.pad(pairs))
    forward = median_ms(lambda: scorer.score_encoded(padded))
    rest = max(0.0, served["request_p50_ms"] - encode - pad - forward)
    return {"tokenisation": encode, "padding": pad, "forward": forward, "HTTP, JSON, ingress hop, batch queue": rest}
