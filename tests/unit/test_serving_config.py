"""Request parsing, ranking and the endpoint's config files, without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from disranker.config import ConfigError
from disranker.serving.config import RankerArgs, load_serve_file
from disranker.serving.schemas import RequestError, parse_rank_request, rank_documents

ROOT = Path(__file__).resolve().parents[2]
DOCS = [{"id": "a", "title": "cat", "summary": "feline"}, {"id": "b", "title": "dog", "summary": "canine"}]


def _parse(payload, max_documents=3):
    return parse_rank_request(json.dumps(payload).encode(), max_documents)


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"query": "", "documents": DOCS}, 422, "query"),
        ({"documents": DOCS}, 422, "query"),
        ({"query": "q", "documents": []}, 422, "documents"),
        ({"query": "q", "documents": DOCS * 2}, 422, "documents"),
        ({"query": "q", "documents": [{"id": 1, "summary": "x"}]}, 422, "documents[0].id"),
        ({"query": "q", "documents": [DOCS[0], {"id": "b", "summary": 2.5}]}, 422, "documents[1].summary"),
        ({"query": "q", "documents": [DOCS[0], {"id": "a", "summary": "x"}]}, 422, "documents[1].id"),
        ({"query": "q", "documents": [{"id": "a", "title": " ", "summary": ""}]}, 422, "documents[0]"),
        ({"query": "q", "documents": DOCS, "top_k": "2"}, 422, "top_k"),
        ({"query": "q", "documents": DOCS, "extra": 1}, 422, "extra"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_requests_name_the_field(payload, status, field):
    with pytest.raises(RequestError) as caught:
        _parse(payload)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert caught.value.body()["error"]["field"] == field


def test_invalid_json_is_a_400():
    with pytest.raises(RequestError) as caught:
        parse_rank_request(b'{"query": ', 10)
    assert (caught.value.status, caught.value.field) == (400, "body")


def test_ranking_sorts_by_score_and_cuts_to_top_k():
    request = _parse({"query": "q", "documents": [*DOCS, {"id": "c", "summary": "bird"}], "top_k": 2})
    response = rank_documents(request, [0.1, 0.9, 0.5], [False, True, False], "m", 64)
    assert [(r.id, r.rank, r.truncated) for r in response.results] == [("b", 1, True), ("c", 2, False)]
    assert response.truncated_documents == 1


def test_serve_file_gives_the_app_args_with_overrides():
    local = load_serve_file(ROOT / "serve/config.yaml", ["batching.max_batch_size=8", "model=/models/student"])
    assert local.args.batching.max_batch_size == 8 and local.args.model == "/models/student"
    assert local.url == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match="max_replicas"):
        load_serve_file(ROOT / "serve/config.yaml", ["autoscaling.min_replicas=5"])
    with pytest.raises(ConfigError, match="nope"):
        load_serve_file(ROOT / "serve/config.yaml", ["nope=1"])


def test_ray_service_embeds_the_serve_config():
    manifest = yaml.safe_load((ROOT / "cluster/ray-service.student.yaml").read_text())
    assert manifest["kind"] == "RayService" and manifest["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    local = yaml.safe_load((ROOT / "serve/config.yaml").read_text())
    assert embedded["applications"] == local["applications"]
    assert embedded["http_options"] == {**local["http_options"], "host": "0.0.0.0"}
    RankerArgs.model_validate(embedded["applications"][0]["args"])


def test_runtime_and_the_onnx_check_are_configurable():
    assert RankerArgs().runtime == "torch"
    split = "outputs/demo/corpus/judgments/test.parquet"
    local = load_serve_file(
        ROOT / "serve/config.yaml", ["runtime=onnx-int8", "onnx.min_spearman=0.95", f"onnx.check_judgments={split}"]
    )
    assert local.args.runtime == "onnx-int8" and local.args.onnx.min_spearman == 0.95
    assert local.args.onnx.check_judgments == split
    assert local.args.onnx.min_top10_agreement == 0.9 and local.args.onnx.check_max_queries == 50
    with pytest.raises(ConfigError, match="runtime"):
        load_serve_file(ROOT / "serve/config.yaml", ["runtime=onnx"])
    with pytest.raises(ConfigError, match="min_top10_agreement"):
        load_serve_file(ROOT / "serve/config.yaml", ["onnx.min_top10_agreement=1.5"])
