"""One sentence-transformers backend timed on given pairs: the anchors ``serve_load.py`` compares the endpoint with.

Runs in a venv of its own (``make anchors``: benchmarks/anchors/*.txt), because sentence-transformers' ONNX and
OpenVINO backends need older transformers than the platform's; so this file imports nothing from disranker. It loads
``CrossEncoder(--model, backend=…)`` with raw logits (identity activation) and ``--threads`` threads, then times
``predict`` on all pairs at once (batch 32, as users call it) and once per request (its p50 / p99), after a warm-up.

    .venv-anchors-openvino/bin/python benchmarks/st_anchor.py --model DIR --pairs pairs.json --backend openvino \
        --out anchor.json

``--backend``: torch, onnx, onnx-int8 (sentence-transformers' own dynamic int8 export for AVX-512 VNNI), openvino,
openvino-int8 (its static int8 export, ``export_static_quantized_openvino_model``, calibrated on the pairs in
``pairs.json``'s ``calibration``: the function takes a dataset name, so they go in as a local CSV dataset, one
``query [SEP] document`` text per row, as it tokenises one text per example).
``pairs.json``: ``{"requests": [[[query, document], ...], ...], "calibration": [[query, document], ...]}``; the output
holds every pair's score in that order.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 32  # CrossEncoder.predict's default


def load(model_dir: str, backend: str, threads: int, max_length: int, calibration: list[tuple[str, str]]):
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    common = {"num_labels": 1, "max_length": max_length, "activation_fn": torch.nn.Identity()}
    if backend == "torch":
        return CrossEncoder(model_dir, **common)
    if backend.startswith("openvino"):
        kwargs = {"ov_config": {"INFERENCE_NUM_THREADS": threads}}
        encoder = CrossEncoder(model_dir, backend="openvino", model_kwargs=kwargs, **common)
        if backend == "openvino":
            return encoder
        _export_openvino_int8(encoder, model_dir, calibration)
        kwargs["file_name"] = "openvino/openvino_model_qint8_quantized.xml"
        return CrossEncoder(model_dir, backend="openvino", model_kwargs=kwargs, **common)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    kwargs = {"session_options": options, "provider": "CPUExecutionProvider"}
    if backend == "onnx":
        return CrossEncoder(model_dir, backend="onnx", model_kwargs=kwargs, **common)
    from sentence_transformers import export_dynamic_quantized_onnx_model

    exported = CrossEncoder(model_dir, backend="onnx", model_kwargs=kwargs, **common)
    export_dynamic_quantized_onnx_model(exported, "avx512_vnni", model_dir)
    kwargs["file_name"] = "onnx/model_qint8_avx512_vnni.onnx"
    return CrossEncoder(model_dir, backend="onnx", model_kwargs=kwargs, **common)


def _export_openvino_int8(encoder, model_dir: str, calibration: list[tuple[str, str]]) -> None:
    import csv

    from optimum.intel import OVQuantizationConfig
    from sentence_transformers import export_static_quantized_openvino_model

    if not calibration:
        raise ValueError("openvino-int8 needs calibration pairs ('calibration' in --pairs)")
    dataset = Path(model_dir).parent / "calibration"
    dataset.mkdir()
    with open(dataset / "train.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text"])
        writer.writerows([f"{query} {encoder.tokenizer.sep_token} {document}"] for query, document in calibration)
    config = OVQuantizationConfig(num_samples=len(calibration))
    local = {"dataset_name": str(dataset), "dataset_config_name": "default", "dataset_split": "train"}
    export_static_quantized_openvino_model(encoder, config, model_dir, column_name="text", **local)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a cross-encoder folder (saved with save_pretrained)")
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"], required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    given = json.loads(Path(args.pairs).read_text())
    requests = [[tuple(pair) for pair in request] for request in given["requests"]]
    calibration = [tuple(pair) for pair in given.get("calibration", [])]
    pairs = [pair for request in requests for pair in request]
    with tempfile.TemporaryDirectory() as scratch:  # exports land beside the weights: a copy keeps the source clean
        model_dir = shutil.copytree(args.model, Path(scratch) / "model")
        started = time.perf_counter()
        encoder = load(str(model_dir), args.backend, args.threads, args.max_length, calibration)
        load_s = time.perf_counter() - started
        encoder.predict(pairs[:BATCH], batch_size=BATCH, show_progress_bar=False)  # warm-up
        started = time.perf_counter()
        scores = encoder.predict(pairs, batch_size=BATCH, show_progress_bar=False)
        bulk_s = time.perf_counter() - started
        latencies = []
        for request in requests:
            started = time.perf_counter()
            encoder.predict(request, batch_size=BATCH, show_progress_bar=False)
            latencies.append(time.perf_counter() - started)
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    packages = ("sentence-transformers", "transformers", "torch", "optimum", "optimum-onnx", "optimum-intel",
                "onnxruntime", "openvino")  # fmt: skip
    result = {
        "backend": args.backend,
        "versions": {name: _version(name) for name in packages},
        "load_s": load_s,
        "pairs": len(pairs),
        "pairs_per_s": len(pairs) / bulk_s,
        "request_p50_ms": p50,
        "request_p99_ms": p99,
        "scores": np.asarray(scores, dtype=float).ravel().tolist(),
    }
    Path(args.out).write_text(json.dumps(result))
    print(f"{args.backend}: {result['pairs_per_s']:.0f} pairs/s, a request p50 {p50:.0f} ms, p99 {p99:.0f} ms")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
