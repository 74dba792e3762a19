"""The ranking endpoint on a local Ray, called over real HTTP on 127.0.0.1 (a port the OS picks): rankings, input
checks, the rerank routes, auth, batching and the deployment's settings.

One tiny student for the module (tests/integration/conftest.py); its scores are computed directly too, so the
endpoint's ranking is checked against known values.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.rank_bodies import any_requests, body_bytes, valid_requests
from tests.serving_client import APP, AUTH, DOCS, QUERY, TOKEN, deployment_details, info, rank

from disranker.models.loading import load_student, score_pairs_student

pytestmark = pytest.mark.integration


def test_ranking_matches_direct_scores(base_url, student_dir):
    response = rank(base_url, {"query": QUERY, "documents": DOCS})
    assert response.status_code == 200, response.text
    body = response.json()

    model, tokenizer = load_student(student_dir)
    expected = score_pairs_student(
        model, tokenizer, [QUERY] * len(DOCS), [d["title"] for d in DOCS], [d["summary"] for d in DOCS], max_length=64
    )
    expected_order = [DOCS[i]["id"] for i in np.argsort(-expected, kind="stable")]
    assert [r["id"] for r in body["results"]] == expected_order
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4]
    by_id = {r["id"]: r["score"] for r in body["results"]}
    np.testing.assert_allclose([by_id[d["id"]] for d in DOCS], expected, rtol=1e-5, atol=1e-6)
    assert {r["id"]: r["truncated"] for r in body["results"]} == {
        "cat": False,
        "dog": False,
        "stone": False,
        "tree": True,
    }
    assert body["truncated_documents"] == 1 and body["max_length"] == 64

    top = rank(base_url, {"query": QUERY, "documents": DOCS, "top_k": 2}).json()
    assert [r["id"] for r in top["results"]] == expected_order[:2]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (b"{not json", 400, "body"),
        ({"query": "   ", "documents": DOCS}, 422, "query"),
        ({"query": QUERY, "documents": []}, 422, "documents"),
        ({"query": QUERY, "documents": [{**DOCS[0], "id": f"d{i}"} for i in range(9)]}, 422, "documents"),
        ({"query": 7, "documents": DOCS}, 422, "query"),
        ({"query": QUERY, "documents": [DOCS[0], {**DOCS[1], "title": ["dog"]}]}, 422, "documents[1].title"),
        ({"query": QUERY, "documents": [{"title": "cat", "summary": "feline"}]}, 422, "documents[0].id"),
        ({"query": QUERY, "documents": DOCS, "top_k": 0}, 422, "top_k"),
        ({"query": QUERY, "documents": [{**DOCS[0], "summary": "x" * 5000}]}, 413, "body"),
    ],
)
def test_bad_input_is_refused_and_the_next_request_succeeds(base_url, payload, status, field):
    response = rank(base_url, payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message"]
    assert rank(base_url, {"query": QUERY, "documents": DOCS[:2]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"[" * 2000 + b"]" * 2000, 400, "body"),  # before: RecursionError in the parser, a 500
        (b'{"query": "q", "documents": [], "top_k": ' + b"9" * 100 + b"}", 400, "body"),
        (b'{"query": "\\ud800", "documents": [{"id": "a", "summary": "x"}]}', 422, "query"),  # before: a 500
        (b'{"query": "q", "documents": [{"id": "a", "title": "\\udc00"}]}', 422, "documents[0].title"),
        (b'{"query": "q", "documents": [{"id": "a", "summary": "x"}], "top_k": 9}', 422, "top_k"),
        (b'{"query": "q", "documents": [{"id": "a", "summary": "x"}], "top_k": 1e400}', 422, "top_k"),
    ],
)
def test_hostile_bodies_get_a_4xx_naming_the_field(base_url, body, status, field):
    response = rank(base_url, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_control_characters_are_ranked_as_spaces_and_api_docs_are_closed(base_url):
    response = rank(base_url, {"query": "a\u0000small\u0007 carnivore", "documents": DOCS[:2]})
    assert response.status_code == 200, response.text
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(f"{base_url}{path}", timeout=30).status_code == 404, path


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(valid_requests.map(body_bytes), any_requests.map(body_bytes), st.binary(max_size=300)))
def test_generated_bodies_never_get_a_5xx(base_url, body):
    response = rank(base_url, body)
    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.text, body)
    if response.status_code == 200:
        sent = [d["id"] for d in json.loads(body)["documents"]]
        got = [r["id"] for r in response.json()["results"]]
        assert set(got) <= set(sent) and len(got) == min(len(sent), json.loads(body).get("top_k") or len(sent))


def test_cohere_and_tei_rerank_routes_rank_likerank(base_url):
    texts = [d["summary"] for d in DOCS]
    plain = rank(base_url, {"query": QUERY, "documents": [{"id": str(i), "summary": t} for i, t in enumerate(texts)]})
    order = [int(r["id"]) for r in plain.json()["results"]]
    headers = {**AUTH, "Content-Type": "application/json"}
    cohere = requests.post(f"{base_url}/v1/rerank", headers=headers, timeout=60, json={
        "model": "whatever", "query": QUERY, "documents": texts, "top_n": 2, "return_documents": True})  # fmt: skip
    assert cohere.status_code == 200, cohere.text
    results = cohere.json()["results"]
    assert [r["index"] for r in results] == order[:2] and results[0]["document"]["text"] == texts[order[0]]
    assert 0 < results[1]["relevance_score"] <= results[0]["relevance_score"] < 1
    tei = requests.post(f"{base_url}/rerank", headers=headers, timeout=60,
                        json={"query": QUERY, "texts": texts, "raw_scores": True})  # fmt: skip
    assert tei.status_code == 200, tei.text
    by_rank = {int(r["id"]): r["score"] for r in plain.json()["results"]}
    assert [r["index"] for r in tei.json()] == order
    np.testing.assert_allclose([r["score"] for r in tei.json()], [by_rank[i] for i in order], rtol=1e-5, atol=1e-6)
    bad = requests.post(f"{base_url}/rerank", headers=headers, timeout=60, json={"query": QUERY, "texts": ["a", ""]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "texts[1]"
    assert (
        requests.post(f"{base_url}/v1/rerank", json={"query": QUERY, "documents": texts}, timeout=60).status_code == 401
    )


def test_rerank_clients_from_the_registry_call_the_endpoint(base_url, monkeypatch):
    """Cohere's SDK (v1 and v2 routes) and LiteLLM's text-embeddings-inference provider, pointed at 127.0.0.1."""
    import cohere
    from cohere.errors import UnprocessableEntityError

    texts = [d["summary"] for d in DOCS]
    plain = rank(base_url, {"query": QUERY, "documents": [{"id": str(i), "summary": t} for i, t in enumerate(texts)]})
    order = [int(r["id"]) for r in plain.json()["results"]]
    v2 = cohere.ClientV2(api_key=TOKEN, base_url=base_url).rerank(model="m", query=QUERY, documents=texts, top_n=3)
    assert [r.index for r in v2.results] == order[:3] and v2.results[0].relevance_score > v2.results[2].relevance_score
    v1 = cohere.Client(api_key=TOKEN, base_url=base_url)
    answer = v1.rerank(query=QUERY, documents=[{"text": t} for t in texts], return_documents=True)
    assert [r.index for r in answer.results] == order and answer.results[0].document.text == texts[order[0]]
    with pytest.raises(UnprocessableEntityError) as refused:
        v1.rerank(query=QUERY, documents=["a", ""])
    assert refused.value.body["error"]["field"] == "documents[1]"

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of LiteLLM's price list
    import litellm

    tei = litellm.rerank(model="huggingface/disranker", query=QUERY, documents=texts, top_n=2, return_documents=True,
                         api_base=base_url, api_key=TOKEN)  # fmt: skip
    assert [r["index"] for r in tei.results] == order[:2] and tei.results[0]["document"]["text"] == texts[order[0]]


def test_token_is_required_when_set(base_url):
    payload = {"query": QUERY, "documents": DOCS[:2]}
    assert rank(base_url, payload, headers={}).status_code == 401
    wrong = rank(base_url, payload, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["field"] == "Authorization"
    assert requests.get(f"{base_url}/info", timeout=30).status_code == 401
    assert requests.get(f"{base_url}/healthz", timeout=30).json() == {"status": "ok"}  # probes need no token
    assert rank(base_url, payload).status_code == 200


def test_concurrent_requests_share_model_calls(base_url):
    before = info(base_url)["counters"]
    n_requests = 8
    with ThreadPoolExecutor(n_requests) as pool:
        responses = list(pool.map(lambda _: rank(base_url, {"query": QUERY, "documents": DOCS[:3]}), range(n_requests)))
    assert all(r.status_code == 200 for r in responses)
    after = info(base_url)["counters"]
    assert after["requests"] - before["requests"] == n_requests
    assert after["pairs"] - before["pairs"] == 3 * n_requests
    assert after["batches"] - before["batches"] < n_requests


def test_deployment_settings_follow_the_config(base_url, ranker_args):
    config = deployment_details()["deployment_config"]
    autoscaling = config["autoscaling_config"]
    for key, value in ranker_args.autoscaling.model_dump().items():
        assert autoscaling[key] == value, key
    assert config["max_ongoing_requests"] == ranker_args.max_ongoing_requests
    assert config["max_queued_requests"] == ranker_args.max_queued_requests
    assert config["user_config"] == ranker_args.batching.model_dump()


def test_batching_knobs_change_without_a_restart(base_url):
    """`serve deploy` with a new user_config calls reconfigure() on the running replicas; here it is called directly
    (serve.run gives every run a new code version, which replaces replicas instead)."""
    from ray import serve

    before = info(base_url)
    expected = {r["id"]: r["score"] for r in rank(base_url, {"query": QUERY, "documents": DOCS}).json()["results"]}
    knobs = {"max_batch_size": 3, "batch_wait_timeout_s": 0.05}  # a 4-document request now goes as chunks of 3 + 1
    serve.get_deployment_handle("Ranker", APP).reconfigure.remote(knobs).result(timeout_s=60)
    after = info(base_url)
    assert after["batching"] == {**knobs, "max_concurrent_batches": 1} and after["replica"] == before["replica"]
    response = rank(base_url, {"query": QUERY, "documents": DOCS})
    assert {r["id"]: r["score"] for r in response.json()["results"]} == pytest.approx(expected, abs=1e-5)
    counters = info(base_url)["counters"]
    assert (
        counters["batches"] - after["counters"]["batches"] == 2 and counters["pairs"] - after["counters"]["pairs"] == 4
    )
