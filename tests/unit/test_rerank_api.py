"""The Cohere / Jina and text-embeddings-inference rerank shapes: parsed onto /rank's request, answered in theirs."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disranker.serving import rerank_api
from disranker.serving.schemas import RequestError, RequestLimits

LIMITS = RequestLimits(max_documents=3, max_document_chars=50)


def _cohere(payload):
    return rerank_api.parse_cohere(json.dumps(payload).encode(), LIMITS)


def _tei(payload):
    return rerank_api.parse_tei(json.dumps(payload).encode(), LIMITS)


def test_cohere_request_ranks_texts_and_objects_and_answers_in_cohere_shape():
    asked, request = _cohere({"model": "any", "query": "feline", "documents": ["a dog", {"text": "a cat", "id": 7}],
                              "top_n": 1, "return_documents": True})  # fmt: skip
    assert [(d.id, d.title, d.summary) for d in request.documents] == [("0", "", "a dog"), ("1", "", "a cat")]
    response = rerank_api.cohere_response(asked, request, [-1.0, 2.0], "distill:abc")
    assert response["model"] == "distill:abc" and response["id"]
    assert response["results"] == [{"index": 1, "relevance_score": pytest.approx(1 / (1 + math.exp(-2))),
                                    "document": {"text": "a cat"}}]  # fmt: skip


def test_tei_request_answers_a_sorted_list_with_raw_or_sigmoid_scores():
    asked, request = _tei({"query": "feline", "texts": ["a dog", "a cat"], "raw_scores": True, "return_text": True})
    assert rerank_api.tei_response(asked, [False, False], [-1.0, 2.0]) == [
        {"index": 1, "score": 2.0, "text": "a cat"},
        {"index": 0, "score": -1.0, "text": "a dog"},
    ]
    asked, _ = _tei({"query": "feline", "texts": ["a dog"]})
    assert rerank_api.tei_response(asked, [False], [0.0]) == [{"index": 0, "score": 0.5}]
    asked, _ = _tei({"query": "feline", "texts": ["a dog", "a cat"], "top_n": 1})  # LiteLLM sends it
    assert rerank_api.tei_response(asked, [False, False], [-1.0, 2.0]) == [
        {"index": 1, "score": pytest.approx(1 / (1 + math.exp(-2)))}
    ]
    asked, _ = _tei({"query": "feline", "texts": ["a dog"], "truncate": False})
    with pytest.raises(RequestError, match="truncate is false") as caught:
        rerank_api.tei_response(asked, [True], [0.0])
    assert caught.value.field == "texts[0]"


@pytest.mark.parametrize(
    ("parse", "payload", "field"),
    [
        (_cohere, {"query": "q", "documents": ["a", " "]}, "documents[1]"),
        (_cohere, {"query": "q", "documents": ["a"] * 4}, "documents"),
        (_cohere, {"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        (_cohere, {"query": "q", "documents": ["a"], "top_n": 9}, "top_n"),
        (_cohere, {"query": "q", "documents": [3]}, "documents[0]"),
        (_cohere, {"query": "q", "documents": ["x" * 51]}, "documents[0]"),
        (_cohere, {"query": "", "documents": ["a"]}, "query"),
        (_cohere, {"query": "q", "documents": ["a"], "unknown": 1}, "unknown"),
        (_cohere, {"query": "q", "documents": ["a"], "relevant_spans": {}}, "relevant_spans"),
        (_cohere, {"query": "q", "documents": ["a"], "priority": "high"}, "priority"),
        (_tei, {"query": "q", "texts": ["a", "\ud800"]}, "texts[1]"),
        (_tei, {"query": "q", "texts": []}, "texts"),
        (_tei, {"query": "q", "texts": ["a"], "truncation_direction": "Left"}, "truncation_direction"),
        (_tei, {"query": "q", "texts": ["a"], "top_n": 0}, "top_n"),
    ],
)
def test_bad_rerank_bodies_get_a_422_in_the_callers_field_names(parse, payload, field):
    with pytest.raises(RequestError) as caught:
        parse(payload)
    assert (caught.value.status, caught.value.field) == (422, field)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"query": st.text(max_size=10), "documents": st.lists(st.text(max_size=10) | st.integers(), max_size=5)},
        optional={"top_n": st.integers(-2, 6), "return_documents": st.booleans() | st.integers()},
    )
)
def test_any_cohere_body_is_parsed_or_refused_with_a_4xx(payload):
    try:
        _cohere(payload)
    except RequestError as exc:
        assert exc.status in (400, 422) and exc.field
