"""The student cross-encoder as an OpenVINO model, in the CPU's own precision or with calibrated int8, and scoring
pairs with it.

``openvino_student`` converts the float32 ONNX graph of ``onnx_export`` (same inputs, dynamic batch and sequence)
with OpenVINO's own converter (``openvino.convert_model``). With ``calibration`` pairs it also quantises the model
with NNCF's post-training quantisation (``nncf.quantize``, transformer preset: int8 weights *and* activations, the
activation ranges measured on those pairs, SmoothQuant and bias correction). Both are cached under
``<cache_root>/<name>-<float|int8>-<key>/`` (``packaged.publish_dir``: replicas on one machine convert once), the key
hashing the weights, the tool versions and the calibration pairs.

``compile_student`` compiles for the CPU with a fixed thread count, one stream per thread. OpenVINO then computes in
the CPU's fastest precision that it supports: bfloat16 where the CPU has AMX or AVX-512 BF16, float32 elsewhere
(``inference_precision`` tells which). The serving check (``serving.agreement``) decides whether a given model and
CPU rank like torch.

Needs the ``openvino`` extra: ``pip install 'disranker[openvino]'`` (openvino, nncf).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from disranker.models import packaged
from disranker.models.onnx_export import FLOAT_FILE, _version, export_key, graph_batches, onnx_folder
from disranker.models.text import STUDENT_MAX_LENGTH, encode_student, pair_texts

logger = logging.getLogger(__name__)

MODEL_FILE = "model.xml"  # beside it, model.bin holds the weights
RECIPE = "ov-convert-onnx-v1+nncf-ptq-transformer-v1"
CALIBRATION_BATCH = 16  # pairs per calibration batch (the statistics see every pair)


def openvino_student(
    model,
    tokenizer,
    *,
    name: str = "student",
    cache_root: str | Path | None = None,
    onnx_cache_root: str | Path | None = None,
    calibration: pa.Table | None = None,
    max_length: int = STUDENT_MAX_LENGTH,
) -> Path:
    """The OpenVINO model file of ``model``: float, or int8 calibrated on ``calibration`` (query, title, summary).
    It is converted from ``onnx_export``'s float graph, cached under ``onnx_cache_root``."""
    import openvino as ov  # here: a missing extra fails before any export

    root = Path(cache_root).expanduser() if cache_root else packaged.cache_dir() / "openvino"
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{RECIPE}:{export_key(model)}:{_version('openvino')}:{_version('nncf')}".encode())
    if calibration is not None:
        digest.update(f"int8:{max_length}".encode())
        for column in ("query", "title", "summary"):
            digest.update("\x1f".join(calibration[column].to_pylist()).encode())
    kind = "int8" if calibration is not None else "float"
    dest = root / f"{name}-{kind}-{digest.hexdigest()}"

    def build(tmp: Path) -> None:
        source = onnx_folder(model, tokenizer, name=name, cache_root=onnx_cache_root) / FLOAT_FILE
        converted = ov.convert_model(str(source))
        if calibration is not None:
            logger.info("quantising %s to int8 with NNCF on %d pairs (once)", name, calibration.num_rows)
            converted = _quantize(converted, tokenizer, calibration, max_length)
        tmp.mkdir(parents=True)
        ov.save_model(converted, str(tmp / MODEL_FILE), compress_to_fp16=False)

    return packaged.publish_dir(build, dest) / MODEL_FILE


def _quantize(converted, tokenizer, calibration: pa.Table, max_length: int):
    import nncf

    queries, titles, summaries = pair_texts(calibration)
    names = [port.get_any_name() for port in converted.inputs]
    batches = []
    for start in range(0, len(queries), CALIBRATION_BATCH):
        end = start + CALIBRATION_BATCH
        encoded = encode_student(tokenizer, queries[start:end], titles[start:end], summaries[start:end],
                                 max_length=max_length, return_tensors="np")  # fmt: skip
        batches.append({name: np.asarray(encoded[name], dtype=np.int64) for name in names})
    return nncf.quantize(
        converted, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches)
    )


def compile_student(path: str | Path, threads: int):
    """``path`` compiled for this CPU on ``threads`` threads, one inference stream per thread; returns the compiled
    model and the precision OpenVINO computes in here (``bf16`` or ``f32``).

    Why a stream per thread (the throughput hint) and not one two-thread stream (the latency hint): a batch of 32
    short pairs is too small to keep two threads busy, and on a replica that shares its cores with Serve's proxy a
    two-thread forward waits for whichever thread was preempted. On a 2-core AMX Xeon, 24 requests of 50 documents
    (batches of 32 and 18) were scored at 720 pairs/s with a request's batches side by side against 650 one after
    another, 790 with every batch in flight; with another job on both cores, 80 ms a request against 170. The scores
    are the same to the bit."""
    import openvino as ov

    # Unpinned: OpenVINO pins each stream's thread to a core by default, and a pinned stream whose core is taken by
    # Serve's proxy or the ingress waits for it even when the other core is idle. benchmarks/serve_load.py, 64
    # requests a level, two rounds each, 2-core AMX Xeon: 663 and 698 pairs/s unpinned against 618 and 638 pinned.
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads,
              "ENABLE_CPU_PINNING": False}  # fmt: skip
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    return compiled, compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def score_pairs_openvino(
    compiled,
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    batch_size: int = 64,
    max_length: int = STUDENT_MAX_LENGTH,
) -> np.ndarray:
    """Raw student logits (float32, one per pair, input order) from ``compile_student``'s compiled model; the same
    token ids and length-sorted batches as the torch and ONNX Runtime paths, as many in flight as it has streams."""
    if not len(queries):
        return np.empty(0, dtype=np.float32)
    encoded = encode_student(tokenizer, queries, titles, summaries, max_length=max_length, return_tensors="np")
    return score_encoded_openvino(compiled, encoded, batch_size)


def score_encoded_openvino(compiled, encoded: Mapping[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """``score_pairs_openvino`` on pairs already encoded (``encode_student``'s arrays)."""
    # Requests started and waited on from this thread, with no Python callback: OpenVINO's stream threads then never
    # need the GIL, which a callback's would, and a compiled model freed just after (its destructor holds the GIL
    # while it joins them) hung the process (seen: 1 in 30 scorings of the MiniLM student, OpenVINO 2026.4).
    requests = [
        compiled.create_infer_request() for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    ]
    in_flight: dict[int, np.ndarray] = {}  # request slot -> the pair indices it is scoring
    scores = np.empty(len(encoded["input_ids"]), dtype=np.float32)

    def collect(slot: int) -> None:
        if (rows := in_flight.pop(slot, None)) is not None:
            requests[slot].wait()
            scores[rows] = requests[slot].get_output_tensor(0).data[:, 0]

    inputs = {port.get_any_name() for port in compiled.inputs}
    batches = graph_batches(inputs, encoded, batch_size)
    try:
        for number, (rows, feed) in enumerate(batches):
            slot = number % len(requests)  # length-sorted batches take about as long as the one before them
            collect(slot)
            requests[slot].start_async(feed)
            in_flight[slot] = rows
        for slot in list(in_flight):
            collect(slot)
    finally:  # after a failure, no request may still be writing into its buffers
        for slot in in_flight:
            requests[slot].wait()
    return scores
