"""The openvino and openvino-int8 serving paths without Ray, on a tiny BERT cross-encoder: conversion, calibration,
the cache, the check that picks OpenVINO or falls back to torch, and where the calibration pairs come from."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from disranker.serving.agreement import calibration_set, check_agreement, synthetic_pairs
from disranker.serving.config import RankerArgs

pytest.importorskip("openvino")
# As for onnx-int8 (tests/unit/test_onnx_runtime.py): a 32-wide random BERT in int8 or bfloat16 ranks close to, not at,
# its float self, so the "serves" tests use floors below the defaults, which are meant for real students.
LOOSE = {"min_spearman": 0.8, "min_top10_agreement": 0.6}


@pytest.fixture(scope="module")
def tiny_dir(tiny_student_dir):
    return tiny_student_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def _args(tiny_dir, cache, runtime="openvino", **check) -> RankerArgs:
    return RankerArgs(
        model=tiny_dir, max_length=64, torch_threads=1, runtime=runtime, check={"cache_dir": cache, **check}
    )


def _texts(n_queries=6):
    table = synthetic_pairs(n_queries=n_queries, docs_per_query=10, seed=3)
    return table["query"].to_pylist(), table["title"].to_pylist(), table["summary"].to_pylist(), table["query_id"]


@pytest.mark.parametrize("runtime", ["openvino", "openvino-int8"])
def test_openvino_runtime_is_served_when_it_ranks_like_torch(tiny_dir, cache, runtime):
    from disranker.serving.openvino_runtime import OpenVinoScorer
    from disranker.serving.runtime import load_scorer
    from disranker.serving.scorer import TorchScorer

    scorer = load_scorer(_args(tiny_dir, cache, runtime, **LOOSE))
    assert isinstance(scorer, OpenVinoScorer) and not hasattr(scorer, "model")  # no torch weights kept
    report = scorer.runtime
    assert report["active"] == runtime and report["reason"] is None and report["check"]["n_queries"] == 16
    assert report["inference_precision"] in ("bf16", "f32") and report["openvino_file"].endswith("model.xml")
    assert ("calibration" in report) == (runtime == "openvino-int8")
    queries, titles, summaries, query_ids = _texts()
    titles[2] = "tree " * 40  # longer than max_length: cut the same way on both sides
    expected = TorchScorer.load(_args(tiny_dir, cache)).score(queries, titles, summaries)
    got = scorer.score(queries, titles, summaries)
    assert got.dtype == np.float32 and got.shape == expected.shape
    if runtime == "openvino" and report["inference_precision"] == "f32":
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert check_agreement(expected, got, query_ids.to_numpy())["spearman"] > 0.8


def test_batches_in_flight_on_both_streams_land_on_their_own_pairs(tiny_dir, cache):
    from disranker.models.onnx_export import graph_batches
    from disranker.models.openvino_export import compile_student, openvino_student, score_pairs_openvino
    from disranker.models.text import encode_student
    from disranker.serving.scorer import TorchScorer

    torch_scorer = TorchScorer.load(_args(tiny_dir, cache))
    tokenizer = torch_scorer.tokenizer
    compiled, _ = compile_student(openvino_student(torch_scorer.model, tokenizer, cache_root=cache), threads=2)
    assert compiled.get_property("NUM_STREAMS") == 2
    assert compiled.get_property("ENABLE_CPU_PINNING") is False  # a stream may move to whichever core is free
    queries, titles, summaries, _ = _texts()
    summaries = [summary * (1 + i % 5) for i, summary in enumerate(summaries)]  # batches of different lengths
    got = score_pairs_openvino(compiled, tokenizer, queries, titles, summaries, batch_size=4, max_length=64)

    request, inputs = compiled.create_infer_request(), {port.get_any_name() for port in compiled.inputs}
    expected = np.full(len(queries), np.nan, dtype=np.float32)
    encoded = encode_student(tokenizer, queries, titles, summaries, max_length=64, return_tensors="np")
    for rows, feed in graph_batches(inputs, encoded, 4):  # one at a time
        expected[rows] = request.infer(feed)[compiled.output(0)][:, 0]
    np.testing.assert_array_equal(got, expected)
    assert len(set(got.tolist())) > len(got) // 2  # distinct scores: a batch written to the wrong rows would show


FREE_AFTER_SCORING = """
import sys
from disranker.models.openvino_export import compile_student, openvino_student, score_pairs_openvino
from disranker.serving.agreement import synthetic_pairs
from disranker.serving.config import RankerArgs
from disranker.serving.scorer import TorchScorer

scorer = TorchScorer.load(RankerArgs(model="packaged:minilm", max_length=64, torch_threads=1))
path = openvino_student(scorer.model, scorer.tokenizer, cache_root=sys.argv[1])
pairs = synthetic_pairs(n_queries=5, docs_per_query=10)
texts = [pairs[column].to_pylist() for column in ("query", "title", "summary")]
for _ in range(60):
    compiled, _ = compile_student(path, threads=2)
    score_pairs_openvino(compiled, scorer.tokenizer, *texts, batch_size=8, max_length=64)
    del compiled  # freed right after its last batch: the moment a stream thread still wanting the GIL hung
print("done")
"""


def test_a_compiled_model_freed_right_after_scoring_does_not_hang(cache):
    # In a subprocess, so that a hang fails this test instead of the run. With a Python callback on the requests, the
    # packaged MiniLM hung about once in 30 rounds; the tiny BERT's batches are too quick to show it.
    result = subprocess.run(
        [sys.executable, "-c", FREE_AFTER_SCORING, cache], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]


def test_conversion_is_cached_per_weights_and_calibration(tiny_dir, cache, monkeypatch):
    from disranker.models import openvino_export
    from disranker.serving.scorer import TorchScorer

    torch_scorer = TorchScorer.load(_args(tiny_dir, cache))
    model, tokenizer = torch_scorer.model, torch_scorer.tokenizer
    calibration = synthetic_pairs(n_queries=2, docs_per_query=4)
    first = openvino_export.openvino_student(model, tokenizer, cache_root=cache, calibration=calibration)
    monkeypatch.setattr(openvino_export, "_quantize", lambda *_a: pytest.fail("quantised again"))
    assert openvino_export.openvino_student(model, tokenizer, cache_root=cache, calibration=calibration) == first
    other = synthetic_pairs(n_queries=2, docs_per_query=4, seed=9)
    with pytest.raises(pytest.fail.Exception, match="quantised again"):  # other calibration pairs: a new entry
        openvino_export.openvino_student(model, tokenizer, cache_root=cache, calibration=other)


def test_missing_openvino_falls_back_with_the_install_hint(tiny_dir, cache, monkeypatch):
    from disranker.serving import openvino_runtime
    from disranker.serving.runtime import load_scorer

    def missing(*_args, **_kwargs):
        raise ModuleNotFoundError("No module named 'openvino'")

    monkeypatch.setattr(openvino_runtime, "openvino_student", missing)
    scorer = load_scorer(_args(tiny_dir, cache))
    assert scorer.runtime["active"] == "torch" and "disranker[openvino]" in scorer.runtime["reason"]


def test_calibration_pairs_come_from_the_training_table_not_the_check(tmp_path):
    table = synthetic_pairs(n_queries=5, docs_per_query=3)
    labels, dev = tmp_path / "labels.parquet", tmp_path / "dev.parquet"
    pq.write_table(table, labels)
    pq.write_table(synthetic_pairs(n_queries=2, docs_per_query=3, seed=4), dev)

    lineage = {"config": {"data": {"labels": str(labels), "dev": str(dev)}}}
    pairs, source = calibration_set(RankerArgs(check={"calibration_max_queries": 2}), lineage)
    assert source == f"lineage training labels {labels}" and pairs.num_rows == 6
    given, source = calibration_set(RankerArgs(check={"calibration_judgments": str(dev)}), lineage)
    assert source == str(dev) and given.num_rows == 6
    fallback, source = calibration_set(RankerArgs(), {"config": {"data": {"labels": str(tmp_path / "gone")}}})
    assert source.startswith("synthetic") and fallback["query"][0] != synthetic_pairs()["query"][0]
