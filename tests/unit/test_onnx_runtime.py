"""The onnx-int8 serving path without Ray: the agreement metrics against hand-computed values, the export of a tiny
BERT cross-encoder (dynamic axes, int8, cache), and the check that picks ONNX or falls back to torch."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from disranker.serving.agreement import check_agreement, check_set, synthetic_pairs

# ---- check_agreement: pure numpy, values worked out by hand ----


def test_identical_scores_agree_fully():
    scores = [0.3, -1.0, 2.5, 0.7]
    result = check_agreement(scores, scores, ["a", "a", "b", "b"])
    assert result == {
        "pearson": pytest.approx(1.0),
        "spearman": pytest.approx(1.0),
        "spearman_query_mean": pytest.approx(1.0),
        "top10_agreement": 1.0,
        "max_abs_diff": 0.0,
        "n_pairs": 4,
        "n_queries": 2,
    }


def test_one_swap_across_the_top10_boundary():
    # Query "a": 12 documents, onnx swaps the 10th and 11th → 9 of the top 10 shared. Query "b": one document, so
    # its top-k is k = 1 (agreement 1) and it has no within-query Spearman. The query ids are interleaved on purpose.
    torch_a = np.arange(12, 0, -1, dtype=float)
    onnx_a = torch_a.copy()
    onnx_a[[9, 10]] = onnx_a[[10, 9]]
    torch_scores = np.concatenate([torch_a[:5], [0.5], torch_a[5:]])
    onnx_scores = np.concatenate([onnx_a[:5], [0.5], onnx_a[5:]])
    ids = ["a"] * 5 + ["b"] + ["a"] * 7
    result = check_agreement(torch_scores, onnx_scores, ids)
    assert result["top10_agreement"] == pytest.approx((0.9 + 1.0) / 2)
    # One adjacent swap among n ranks: rho = 1 - 6 * 2 / (n (n^2 - 1)).
    assert result["spearman_query_mean"] == pytest.approx(1 - 12 / (12 * 143))
    assert result["spearman"] == pytest.approx(1 - 12 / (13 * 168))
    assert result["max_abs_diff"] == 1.0
    assert (result["n_pairs"], result["n_queries"]) == (13, 2)


def test_small_k_and_ties():
    # top-2 of [3, 2, 1] is {0, 1}; of [3, 1, 2] it is {0, 2}: half shared.
    assert check_agreement([3, 2, 1], [3, 1, 2], ["q"] * 3, k=2)["top2_agreement"] == 0.5
    # Ties share their mean rank: torch ranks [0.5, 0.5, 2] vs onnx [0, 1, 2] → rho = 1.5 / sqrt(1.5 * 2).
    result = check_agreement([1, 1, 2], [1, 2, 3], ["q"] * 3)
    assert result["spearman"] == pytest.approx(1.5 / np.sqrt(3.0))
    assert result["pearson"] == pytest.approx(np.corrcoef([1, 1, 2], [1, 2, 3])[0, 1])


def test_constant_scores_have_no_correlation_and_bad_shapes_are_refused():
    result = check_agreement([1.0, 1.0, 1.0], [0.2, 0.1, 0.3], ["q"] * 3)
    assert np.isnan(result["pearson"]) and np.isnan(result["spearman"])
    with pytest.raises(ValueError, match="one per pair"):
        check_agreement([1.0, 2.0], [1.0], ["q", "q"])
    with pytest.raises(ValueError, match="no pairs"):
        check_agreement([], [], [])


# ---- where the check pairs come from ----


def test_check_set_order(tmp_path):
    from disranker.serving.config import RankerArgs

    table = synthetic_pairs(n_queries=5, docs_per_query=3)
    path = tmp_path / "judgments.parquet"
    pq.write_table(table, path)

    given, source = check_set(RankerArgs(check={"check_judgments": str(path), "check_max_queries": 2}), None)
    assert source == str(path) and given.num_rows == 6 and given["query_id"].to_pylist()[::3] == ["q0", "q1"]

    lineage = {"config": {"data": {"dev": str(path)}}}
    from_lineage, source = check_set(RankerArgs(check={"check_max_queries": 4}), lineage)
    assert source.startswith("lineage dev split") and from_lineage.num_rows == 12

    gone = {"config": {"data": {"dev": str(tmp_path / "moved.parquet")}}}
    fallback, source = check_set(RankerArgs(), gone)
    assert source.startswith("synthetic") and fallback.num_rows == 16 * 20

    with pytest.raises(FileNotFoundError):  # asked for explicitly: a missing table is an error, not a fallback
        check_set(RankerArgs(check={"check_judgments": str(tmp_path / "nope.parquet")}), None)


# ---- export, quantisation and the runtime choice on a tiny BERT ----

# A 32-wide random BERT quantised to int8 ranks close to, not at, its float self (Spearman ~0.95 on the synthetic
# set), so the "serves onnx" tests use floors below that; the defaults (0.99 / 0.9) are meant for real students.
LOOSE = {"min_spearman": 0.8, "min_top10_agreement": 0.6}


@pytest.fixture(scope="module")
def tiny_dir(tiny_student_dir):
    return tiny_student_dir


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx_cache"))


def _args(tiny_dir, onnx_cache, **onnx):
    from disranker.serving.config import RankerArgs

    return RankerArgs(
        model=tiny_dir, max_length=64, torch_threads=1, runtime="onnx-int8", check={"cache_dir": onnx_cache, **onnx}
    )


@pytest.fixture(scope="module")
def torch_scorer(tiny_dir, onnx_cache):
    from disranker.serving.scorer import TorchScorer

    return TorchScorer.load(_args(tiny_dir, onnx_cache))


@pytest.fixture(scope="module")
def int8_path(torch_scorer, onnx_cache):
    from disranker.models.onnx_export import int8_student

    return int8_student(torch_scorer.model, torch_scorer.tokenizer, name="tiny", cache_root=onnx_cache)


def _texts(n_queries=6):
    table = synthetic_pairs(n_queries=n_queries, docs_per_query=10)
    return table["query"].to_pylist(), table["title"].to_pylist(), table["summary"].to_pylist(), table["query_id"]


def test_export_has_dynamic_axes_and_int8_scores_follow_torch(torch_scorer, int8_path):
    from disranker.models.onnx_export import FLOAT_FILE, open_session, score_pairs_onnx

    queries, titles, summaries, query_ids = _texts()
    titles[3] = "tree " * 40  # longer than max_length: the same truncation on both sides
    expected = torch_scorer.score(queries, titles, summaries)

    float_session = open_session(int8_path.parent / FLOAT_FILE, threads=1)
    assert [tuple(i.shape) for i in float_session.get_inputs()] == [("batch", "sequence")] * 3
    # Batches of 7 in length order: several batch sizes and sequence lengths go through one graph.
    exact = score_pairs_onnx(float_session, torch_scorer.tokenizer, queries, titles, summaries, 7, 64)
    np.testing.assert_allclose(exact, expected, rtol=1e-4, atol=1e-5)

    int8 = score_pairs_onnx(open_session(int8_path, 1), torch_scorer.tokenizer, queries, titles, summaries, 7, 64)
    assert not np.allclose(int8, expected, atol=1e-6)  # it is quantised …
    agreement = check_agreement(expected, int8, query_ids.to_numpy())
    assert agreement["pearson"] > 0.9 and agreement["spearman"] > 0.9  # … and still ranks like torch


def test_export_is_cached_per_weights(tiny_dir, torch_scorer, int8_path, onnx_cache, tmp_path, monkeypatch):
    import shutil

    import torch

    from disranker.models import onnx_export
    from disranker.models.loading import load_student

    def no_export(*_args, **_kwargs):
        raise AssertionError("exported again although the cache holds this model")

    monkeypatch.setattr(onnx_export, "export_student", no_export)
    path = onnx_export.int8_student(torch_scorer.model, torch_scorer.tokenizer, name="tiny", cache_root=onnx_cache)
    assert path == int8_path
    copy, _ = load_student(shutil.copytree(tiny_dir, tmp_path / "copy"))  # the same student elsewhere: same export
    assert onnx_export.export_key(copy) == onnx_export.export_key(torch_scorer.model)
    bias = torch_scorer.model.classifier.bias
    before, saved = onnx_export.export_key(torch_scorer.model), bias.detach().clone()
    try:
        with torch.no_grad():
            bias += 1.0
        assert onnx_export.export_key(torch_scorer.model) != before  # new weights, new cache entry
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert onnx_export.export_key(torch_scorer.model) == before


def test_agreeing_graph_is_served(tiny_dir, onnx_cache, int8_path):
    from disranker.serving.onnx_runtime import OnnxScorer
    from disranker.serving.runtime import load_scorer

    scorer = load_scorer(_args(tiny_dir, onnx_cache, **LOOSE))
    assert isinstance(scorer, OnnxScorer) and not hasattr(scorer, "model")  # no torch weights kept
    runtime = scorer.runtime
    assert runtime["active"] == "onnx-int8" and runtime["reason"] is None
    assert runtime["onnx_file"] == str(int8_path)
    assert runtime["check"]["source"].startswith("synthetic") and runtime["check"]["n_queries"] == 16
    assert runtime["check"]["spearman"] >= LOOSE["min_spearman"]
    scores = scorer.score(["a cat"], ["cat"], ["feline"])
    assert scores.shape == (1,) and scores.dtype == np.float32
    assert scorer.encoder.encode("a cat", ["cat", "tree " * 80], ["feline", ""]).truncated == [False, True]


def test_impossible_thresholds_fall_back_to_torch(tiny_dir, onnx_cache, int8_path):
    from disranker.serving.runtime import load_scorer
    from disranker.serving.scorer import TorchScorer

    scorer = load_scorer(_args(tiny_dir, onnx_cache, min_spearman=1.0, min_top10_agreement=1.0))
    assert type(scorer) is TorchScorer and scorer.model is not None
    assert scorer.runtime["active"] == "torch" and scorer.runtime["requested"] == "onnx-int8"
    assert "spearman" in scorer.runtime["reason"] and scorer.runtime["check"]["n_pairs"] == 320


def test_broken_graph_falls_back_at_default_thresholds(tiny_dir, onnx_cache, int8_path, tmp_path, monkeypatch):
    """A graph that ranks backwards (its logits negated) must never be served."""
    import onnx
    from onnx import helper

    from disranker.serving import onnx_runtime

    graph = onnx.load(str(int8_path))
    (output,) = graph.graph.output
    producer = next(node for node in graph.graph.node if output.name in node.output)
    producer.output[list(producer.output).index(output.name)] = "logits_before_neg"
    graph.graph.node.append(helper.make_node("Neg", ["logits_before_neg"], [output.name]))
    broken = tmp_path / "broken.onnx"
    onnx.save(graph, str(broken))
    monkeypatch.setattr(onnx_runtime, "int8_student", lambda *_a, **_k: broken)

    from disranker.serving.runtime import load_scorer

    scorer = load_scorer(_args(tiny_dir, onnx_cache))
    assert scorer.runtime["active"] == "torch"
    assert scorer.runtime["check"]["spearman"] < -0.9 and "top10_agreement" in scorer.runtime["reason"]


def test_missing_onnxruntime_falls_back_with_the_install_hint(tiny_dir, onnx_cache, monkeypatch):
    from disranker.serving import onnx_runtime
    from disranker.serving.runtime import load_scorer

    def missing(*_args, **_kwargs):
        raise ModuleNotFoundError("No module named 'onnxruntime'")

    monkeypatch.setattr(onnx_runtime, "int8_student", missing)
    scorer = load_scorer(_args(tiny_dir, onnx_cache))
    assert scorer.runtime["active"] == "torch" and "disranker[onnx]" in scorer.runtime["reason"]
