"""Request parsing, ranking and the endpoint's config files, without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from disranker.config import ConfigError
from disranker.serving.config import RankerArgs, load_serve_file
from disranker.serving.schemas import RequestError, RequestLimits, parse_rank_request, rank_documents

ROOT = Path(__file__).resolve().parents[2]
DOCS = [{"id": "a", "title": "cat", "summary": "feline"}, {"id": "b", "title": "dog", "summary": "canine"}]


LIMITS = RequestLimits(max_documents=3, max_query_chars=50, max_document_chars=100, max_id_chars=10)


def _parse(payload, limits=LIMITS):
    return parse_rank_request(json.dumps(payload).encode(), limits)


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
        ({"query": "q", "documents": DOCS, "top_k": 4}, 422, "top_k"),  # above max_documents
        ({"query": "q" * 51, "documents": DOCS}, 422, "query"),
        ({"query": "q", "documents": [{"id": "a", "title": "t" * 60, "summary": "s" * 60}]}, 422, "documents[0]"),
        ({"query": "q", "documents": [{"id": "x" * 11, "summary": "s"}]}, 422, "documents[0].id"),
        ({"query": "\ud800", "documents": DOCS}, 422, "query"),  # a lone surrogate: valid JSON, not text
        ({"query": "q", "documents": [DOCS[0], {"id": "b", "title": "\udfff"}]}, 422, "documents[1].title"),
    ],
)
def test_bad_requests_name_the_field(payload, status, field):
    with pytest.raises(RequestError) as caught:
        _parse(payload)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert caught.value.body()["error"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": ',
        b"[" * 200_000 + b"]" * 200_000,  # before: RecursionError, a 500
        b'{"query": "q", "documents": [], "top_k": ' + b"9" * 5000 + b"}",  # before: ValueError, a 500
        b'{"query": NaN}',
        b"\xff\xfe",
    ],
)
def test_bodies_the_json_parser_cannot_take_are_a_400(body):
    with pytest.raises(RequestError) as caught:
        parse_rank_request(body, LIMITS)
    assert (caught.value.status, caught.value.field) == (400, "body")


def test_control_characters_become_spaces():
    request = _parse({"query": "a\u0000b\u0007c", "documents": [{"id": "a\u0000", "summary": "x\u009fy\tz"}]})
    assert (request.query, request.documents[0].summary) == ("a b c", "x y\tz")
    assert request.documents[0].id == "a\u0000"  # ids come back as sent


def test_ranking_sorts_by_score_and_cuts_to_top_k():
    request = _parse({"query": "q", "documents": [*DOCS, {"id": "c", "summary": "bird"}], "top_k": 2})
    response = rank_documents(request, [0.1, 0.9, 0.5], [False, True, False], "m", 64)
    assert [(r.id, r.rank, r.truncated) for r in response.results] == [("b", 1, True), ("c", 2, False)]
    assert response.truncated_documents == 1


def test_serve_file_gives_the_app_args_with_overrides():
    local = load_serve_file(ROOT / "serve/config.yaml", ["batching.max_batch_size=8", "model=/models/student"])
    assert local.args.batching.max_batch_size == 8 and local.args.model == "/models/student"
    assert local.url == "http://127.0.0.1:8000" and local.request_timeout_s == 30
    assert (local.args.max_queued_requests, local.args.retry_after_s) == (32, 1)
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


def test_ray_service_pods_use_the_grpc_data_plane_that_disranker_serve_sets():
    from disranker.serving.app import GRPC_TRANSPORT_ENV

    cluster = yaml.safe_load((ROOT / "cluster/ray-service.student.yaml").read_text())["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        assert {name: env.get(name) for name in GRPC_TRANSPORT_ENV} == GRPC_TRANSPORT_ENV, container["name"]


def test_runtime_and_its_check_are_configurable():
    assert RankerArgs().runtime == "torch"
    split = "outputs/demo/corpus/judgments/test.parquet"
    overrides = ["runtime=openvino-int8", "check.min_spearman=0.95", f"check.check_judgments={split}"]
    local = load_serve_file(ROOT / "serve/config.yaml", overrides)
    assert local.args.runtime == "openvino-int8" and local.args.check.min_spearman == 0.95
    assert local.args.check.check_judgments == split and local.args.check.calibration_max_queries == 32
    assert local.args.check.min_top10_agreement == 0.9 and local.args.check.check_max_queries == 50
    former = load_serve_file(ROOT / "serve/config.yaml", ["runtime=onnx-int8", "onnx.min_spearman=0.9"])
    assert former.args.check.min_spearman == 0.9  # the check's former name is still read
    with pytest.raises(ConfigError, match="runtime"):
        load_serve_file(ROOT / "serve/config.yaml", ["runtime=onnx"])
    with pytest.raises(ConfigError, match="min_top10_agreement"):
        load_serve_file(ROOT / "serve/config.yaml", ["onnx.min_top10_agreement=1.5"])


def test_a_max_length_the_model_cannot_read_is_refused_at_startup(tmp_path):
    """Before: the replica started and the first long pair failed inside a shared batch, for every request in it."""
    from disranker.serving.scorer import TorchScorer
    from disranker.testing.tiny import build_tiny_student

    folder = build_tiny_student(tmp_path / "student")
    with pytest.raises(ValueError, match=r"max_length=1024 is more tokens than .* can read \(512 positions\)"):
        TorchScorer.load(RankerArgs(model=folder, max_length=1024))


def test_the_health_check_fails_when_the_model_stops_scoring():
    import asyncio
    from types import SimpleNamespace

    import numpy as np

    from disranker.serving.replica import Ranker

    class Scorer:
        """Encodes as requests are (the health check must go the requests' way), scores ``value``."""

        value = 0.5
        encoded: list[str] = []
        encoder = SimpleNamespace(
            encode=lambda query, titles, summaries: Scorer.encoded.append(query) or SimpleNamespace(pairs=[([1], [0])]),
            pad=lambda pairs: np.array([ids for ids, _ in pairs]),
        )

        def score_encoded(self, input_ids):
            return np.full(len(input_ids), self.value, dtype=np.float32)

    replica = object.__new__(Ranker.func_or_class)  # the class Serve runs, without loading a model
    replica.scorer = Scorer()
    asyncio.run(replica.check_health())
    assert Scorer.encoded == ["health check"]
    replica.scorer.value = float("nan")
    with pytest.raises(RuntimeError, match="health-check pair nan"):
        asyncio.run(replica.check_health())


def test_a_pair_the_model_fails_on_fails_alone_and_a_failing_model_is_a_model_failure():
    import math
    from types import SimpleNamespace

    import numpy as np

    from disranker.serving.replica import ModelFailure, Ranker

    poison = 666  # a token id this fake model cannot score

    class Scorer:
        broken = False
        encoder = SimpleNamespace(pad=lambda pairs: np.array([ids for ids, _ in pairs]))

        def score_encoded(self, input_ids):
            if self.broken or (input_ids == poison).any():
                raise RuntimeError("cannot score")
            return np.arange(len(input_ids), dtype=np.float32)

    replica = object.__new__(Ranker.func_or_class)
    replica.scorer = Scorer()
    scores = replica._score_isolated([([1, 2], [0, 1]), ([1, poison], [0, 1]), ([1, 3], [0, 1])])
    assert scores[0] == 0.0 and math.isnan(scores[1]) and scores[2] == 0.0  # the batch retried pair by pair
    replica.scorer.broken = True
    with pytest.raises(ModelFailure, match="cannot score"):
        replica._score_isolated([([1, 2], [0, 1]), ([1, 3], [0, 1])])


class _FlakyModel:
    """A model deployment handle whose ``score`` raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception):
        self.errors, self.calls = list(errors), 0
        self.score = self

    def remote(self, *args):
        from disranker.serving.replica import Scored

        self.calls += 1

        async def answer():
            if self.errors:
                raise self.errors.pop(0)
            return Scored(model="m", max_length=8, scores=[0.5], truncated=[False])

        return answer()


def test_a_request_whose_replica_died_is_sent_again_once_then_answered_503():
    """Before: a model replica killed under load gave its in-flight requests Serve's 500 (benchmarks/faults.py)."""
    import asyncio

    from ray.exceptions import ActorDiedError
    from ray.serve.exceptions import BackPressureError

    from disranker.serving.app import Unavailable, ask_model

    model = _FlakyModel(ActorDiedError())
    answer = asyncio.run(ask_model(model, "score", ("q", ["t"], ["s"]), retry_after_s=3))
    assert answer.scores == [0.5] and model.calls == 2
    model = _FlakyModel(ActorDiedError(), ActorDiedError())
    with pytest.raises(Unavailable, match="replica stopped") as dead:
        asyncio.run(ask_model(model, "score", ("q", ["t"], ["s"]), retry_after_s=3))
    assert model.calls == 2 and dead.value.status == 503 and dead.value.retry_after_s == 3
    model = _FlakyModel(BackPressureError(num_queued_requests=32, max_queued_requests=32))
    with pytest.raises(Unavailable, match="busy"):
        asyncio.run(ask_model(model, "score", ("q", ["t"], ["s"]), retry_after_s=3))
    assert model.calls == 1  # a full queue is not retried: the client is told when to come back
