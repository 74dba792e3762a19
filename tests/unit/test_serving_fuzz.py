"""Property test of the /rank parser: no body a client can send raises anything but a 4xx ``RequestError``, and every
valid body is ranked by its scores (Hypothesis, bounded so that it runs in CI in seconds)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.rank_bodies import any_requests, body_bytes, json_values, valid_requests

from disranker.serving.schemas import RequestError, RequestLimits, parse_rank_request, rank_documents

LIMITS = RequestLimits(max_documents=5, max_query_chars=40, max_document_chars=80, max_id_chars=8)
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.one_of(
        valid_requests.map(body_bytes),
        any_requests.map(body_bytes),
        json_values.map(body_bytes),
        st.binary(max_size=200),
    )
)
def test_anybody_bytes_is_parsed_or_refused_with_a_4xx_naming_a_field(body):
    try:
        request = parse_rank_request(body, LIMITS)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.field
        return
    assert request.query.strip() and 1 <= len(request.documents) <= LIMITS.max_documents
    for doc in request.documents:  # what reaches the tokenizer is encodable text
        (request.query + doc.id + doc.title + doc.summary).encode("utf-8")


@FUZZ
@given(valid_requests.map(body_bytes), st.randoms(use_true_random=False))
def test_valid_requests_come_back_ranked_by_score(body, random):
    request = parse_rank_request(body, LIMITS)  # valid by construction: never refused
    scores = [random.uniform(-5, 5) for _ in request.documents]
    response = rank_documents(request, scores, [False] * len(scores), "m", 64)
    sent = [d["id"] for d in json.loads(body)["documents"]]
    assert [d.id for d in request.documents] == sent  # ids verbatim, whatever they hold
    ranked = [scores[sent.index(r.id)] for r in response.results]
    assert ranked == sorted(ranked, reverse=True)
    assert len(response.results) == min(len(scores), request.top_k or len(scores))
    assert [r.rank for r in response.results] == list(range(1, len(response.results) + 1))
