"""The student cross-encoder as an ONNX graph with int8 weights, and scoring pairs with it in ONNX Runtime.

``int8_student(model, tokenizer)`` exports the loaded model (``torch.onnx.export``, the torch.export-based exporter:
the TorchScript one is deprecated since torch 2.9 and bakes every shape-dependent Python branch it traces), with
batch and sequence as dynamic axes, then quantises its weights to int8 with ONNX Runtime's dynamic quantisation
(activations are quantised per batch at run time, so no calibration data is needed). Both files are cached under
``$DISRANKER_CACHE/models/onnx/<folder>-<key>/``, where the key hashes the weights, the model config and the
tool versions: replicas on one machine export once, and a retrained student at the same path is exported again.

Exporting the *loaded* model rather than its folder matters for a bare encoder (``packaged:minilm``): its
classification head is created at load time (seeded by the caller), and the ONNX graph must carry that same head.

``score_pairs_onnx`` encodes with ``models.text.encode_student`` and batches in length order exactly like
``loading.score_pairs_student``, so the two runtimes see the same token ids and differ only by the arithmetic.

Needs the ``onnx`` extra: ``pip install 'disranker[onnx]'`` (onnxruntime, onnx, onnxscript).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from disranker.models import packaged
from disranker.models.text import STUDENT_MAX_LENGTH, encode_student

logger = logging.getLogger(__name__)

# 18 is what the torch.export exporter is tested against and what ONNX Runtime >= 1.16 runs in full.
OPSET = 18
FLOAT_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# Bumped when the export or quantisation recipe changes, so caches written by an older recipe are not reused.
RECIPE = "dynamo-opset18-matmul-qint8-per-channel-v1"


class _LogitsOnly(torch.nn.Module):
    """The classifier with plain tensor inputs and one output (HF models return a ModelOutput dataclass)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def input_names(tokenizer) -> list[str]:
    """The encoder inputs the graph takes: BERT has token_type_ids, some encoders (DistilBERT) do not."""
    return [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names]


def export_student(model, tokenizer, out_path: str | Path) -> Path:
    """Write ``model`` (a 1-logit sequence classifier) as one float32 ONNX file with dynamic batch and sequence axes.

    The graph takes int64 ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them),
    each ``[batch, sequence]``, and returns ``logits`` ``[batch, 1]``."""
    names = input_names(tokenizer)
    # Batch 2 and unequal lengths: torch.export specialises dimensions of size 0 or 1, and a padded example keeps
    # the attention mask's padding path in the graph.
    example = encode_student(tokenizer, ["a query", "another query"], ["one title", "a title"], ["a", "a summary"])
    example = {name: example[name] for name in names}
    batch = torch.export.Dim("batch", min=1)
    sequence = torch.export.Dim("sequence", min=1, max=model.config.max_position_embeddings)
    was_training = model.training
    model.eval()
    try:
        program = torch.onnx.export(
            _LogitsOnly(model),
            (),
            kwargs=example,
            input_names=names,
            output_names=["logits"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    finally:
        model.train(was_training)
    out = Path(out_path)
    # One file: students are far below protobuf's 2 GB limit, and a single file is simpler to cache and ship.
    program.save(str(out), external_data=False)
    return out


def quantize_int8(float_path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantisation of the graph's MatMul weights (signed int8, one scale per output channel).

    Chosen on packaged:minilm over 1,600 demo test pairs (benchmarks/onnx_agreement.py and side runs): per-channel
    scales rank closer to torch than one scale per tensor (Spearman 0.989 against 0.967, largest score error halved)
    at about the same speed. The embedding Gather stays float32: quantising it too shrinks MiniLM's int8 file from
    57 to 23 MB but ranked no closer and was not faster here. The serving check
    (``serving.agreement.check_agreement``) still decides whether a given model is served."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        Path(float_path), Path(out_path), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
    )
    return Path(out_path)


def export_key(model) -> str:
    """A hash of what the ONNX files depend on: weights, model config, recipe and tool versions."""
    digest = hashlib.blake2b(digest_size=8)
    versions = {pkg: _version(pkg) for pkg in ("torch", "onnx", "onnxscript", "onnxruntime")}
    digest.update(json.dumps({"recipe": RECIPE, "versions": versions}, sort_keys=True).encode())
    config = model.config.to_dict()
    config.pop("_name_or_path", None)  # where it was loaded from: a copy of the same student reuses the export
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def onnx_folder(model, tokenizer, *, name: str = "student", cache_root: str | Path | None = None) -> Path:
    """The folder holding ``model``'s float32 (``FLOAT_FILE``) and int8 (``INT8_FILE``) ONNX graphs, exported and
    quantised once per key (an existing cache entry is reused).

    The folder is written to a temporary sibling and renamed into place (``packaged.publish_dir``), so replicas
    starting together on one machine never read a half-written file."""
    root = Path(cache_root).expanduser() if cache_root else packaged.cache_dir() / "onnx"
    key = export_key(model)
    # The name only makes the folder readable; the same weights reached under another name reuse its export.
    dest = next((d for d in root.glob(f"*-{key}") if d.is_dir() and not d.name.startswith(".")), root / f"{name}-{key}")

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        logger.info("exporting the student to ONNX and quantising it to int8 under %s (once)", dest)
        export_student(model, tokenizer, tmp / FLOAT_FILE)
        quantize_int8(tmp / FLOAT_FILE, tmp / INT8_FILE)

    return packaged.publish_dir(build, dest)


def int8_student(model, tokenizer, *, name: str = "student", cache_root: str | Path | None = None) -> Path:
    """The int8 ONNX file of ``model`` (``onnx_folder``)."""
    return onnx_folder(model, tokenizer, name=name, cache_root=cache_root) / INT8_FILE


def open_session(path: str | Path, threads: int):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (one replica's CPUs) and no inter-op pool."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def score_pairs_onnx(
    session,
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    batch_size: int = 64,
    max_length: int = STUDENT_MAX_LENGTH,
) -> np.ndarray:
    """Raw student logits (float32, one per pair, input order) from an ONNX Runtime session of ``export_student``'s
    graph (or its int8 version)."""
    if not len(queries):
        return np.empty(0, dtype=np.float32)
    encoded = encode_student(tokenizer, queries, titles, summaries, max_length=max_length, return_tensors="np")
    return score_encoded_onnx(session, encoded, batch_size)


def score_encoded_onnx(session, encoded: Mapping[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """``score_pairs_onnx`` on pairs already encoded (``encode_student``'s arrays)."""
    inputs = {i.name for i in session.get_inputs()}
    scores = np.empty(len(encoded["input_ids"]), dtype=np.float32)
    for rows, feed in graph_batches(inputs, encoded, batch_size):
        scores[rows] = session.run(["logits"], feed)[0][:, 0]
    return scores


def graph_batches(
    inputs: set[str], encoded: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(pair indices, graph inputs) per batch of ``encoded`` pairs (``encode_student``'s arrays): the pairs
    length-sorted, each batch cut to the columns that are not padding in all its rows (as score_pairs_student), the
    int64 arrays named in ``inputs``."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: it must be at least 1")
    if not len(encoded["input_ids"]):
        return
    arrays = {name: np.asarray(encoded[name], dtype=np.int64) for name in inputs}
    mask = arrays["attention_mask"].astype(bool)
    order = np.argsort(mask.sum(axis=1), kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        keep = mask[rows].any(axis=0)
        yield rows, {name: np.ascontiguousarray(array[rows][:, keep]) for name, array in arrays.items()}
