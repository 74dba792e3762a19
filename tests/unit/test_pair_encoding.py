"""The endpoint's pair encoding (serving.pair_encoding) against evaluation's (models.text.encode_student): the same
arrays for any text, truncation included, on the tiny test tokenizer and the packaged MiniLM's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from disranker.models.loading import resolve_model_dir
from disranker.models.text import encode_student, student_document
from disranker.serving.pair_encoding import PairEncoder
from disranker.serving.schemas import RequestError
from disranker.testing.tiny import build_tiny_student

MAX_LENGTH = 24  # short, so that generated texts are often cut, the query too
WORDS = ["cat", "feline", "the", "dog", "barked", "stone", "wall", "Ünïcode", "naïve", "x" * 30, "a-b", "3.14"]


@pytest.fixture(scope="module", params=["tiny", "minilm"])
def tokenizer(request, tmp_path_factory):
    folder = build_tiny_student(tmp_path_factory.mktemp("tiny")) if request.param == "tiny" else None
    return AutoTokenizer.from_pretrained(folder or resolve_model_dir("packaged:minilm"))


texts = st.lists(st.sampled_from(WORDS), max_size=20).map(" ".join)
documents = st.lists(st.tuples(texts, texts), min_size=1, max_size=6)


def _expected(tokenizer, query, docs, max_length=MAX_LENGTH):
    titles, summaries = [t for t, _ in docs], [s for _, s in docs]
    return encode_student(tokenizer, [query] * len(docs), titles, summaries, max_length, return_tensors="np")


@settings(max_examples=60, deadline=None)
@given(query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join), docs=documents)
def test_pairs_equal_evaluation_encoding(tokenizer, query, docs):
    encoder = PairEncoder(tokenizer, MAX_LENGTH)
    try:
        encoded = encoder.encode(query, [t for t, _ in docs], [s for _, s in docs])
    except RequestError as refused:  # only a query that leaves no room beside it is refused
        assert refused.field == "query"
        assert len(tokenizer(query, add_special_tokens=False)["input_ids"]) >= MAX_LENGTH - 3
        return
    expected = _expected(tokenizer, query, docs)
    got = encoder.pad(encoded.pairs)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    # A document is reported cut exactly when fewer of its tokens reach its pair (token type 1, less the final
    # [SEP]) than it has; longest-first truncation may cut the query instead.
    kept = expected["token_type_ids"].sum(axis=1) - 1
    for cut, reached, (title, summary) in zip(encoded.truncated, kept, docs, strict=True):
        tokens = len(tokenizer(student_document(title, summary), add_special_tokens=False)["input_ids"])
        assert cut == (reached < tokens)


def test_long_query_is_refused_naming_the_field_and_its_length(tokenizer):
    with pytest.raises(RequestError, match="the query is 40 tokens") as refused:
        PairEncoder(tokenizer, MAX_LENGTH).encode("cat " * 40, ["t"], ["s"])
    assert refused.value.status == 422 and refused.value.field == "query"


def test_a_query_cut_beside_a_short_document_leaves_it_whole(tokenizer):
    encoded = PairEncoder(tokenizer, MAX_LENGTH).encode("cat " * 15, ["dog"], ["stone wall " * 10])
    assert encoded.truncated == [True]
    encoded = PairEncoder(tokenizer, MAX_LENGTH).encode("cat " * 19, ["dog"], ["stone"])  # the query is cut
    (ids, types), document = encoded.pairs[0], tokenizer(student_document("dog", "stone"), add_special_tokens=False)
    assert encoded.truncated == [False] and len(ids) == MAX_LENGTH and sum(types) == len(document["input_ids"]) + 1


def test_pad_of_no_pairs_is_empty(tokenizer):
    assert all(array.shape == (0, 0) for array in PairEncoder(tokenizer, MAX_LENGTH).pad([]).values())


def test_left_padding_follows_the_tokenizer(tokenizer):
    tokenizer.padding_side = "left"
    try:
        docs = [("cat", "the cat sat"), ("dog barked all night long", "stone wall")]
        encoder = PairEncoder(tokenizer, MAX_LENGTH)
        got = encoder.pad(encoder.encode("a cat", [t for t, _ in docs], [s for _, s in docs]).pairs)
        expected = _expected(tokenizer, "a cat", docs)
        assert expected["attention_mask"][0, 0] == 0  # the shorter pair is padded on the left
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    finally:
        tokenizer.padding_side = "right"
