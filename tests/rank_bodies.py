"""Hypothesis strategies for /rank bodies, shared by the parser's property test and the live endpoint's."""

from __future__ import annotations

import json

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
text = st.text(st.characters(codec="utf-8"), max_size=60) | st.text(max_size=60)  # the second may hold surrogates
documents = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=10)}, optional={"title": text, "summary": text, "extra": json_values}
    ),
    max_size=7,
)
any_requests = st.fixed_dictionaries(
    {"query": text | json_values, "documents": documents | json_values},
    optional={"top_k": st.integers(-3, 10) | json_values},
)
# Printable text with a control character now and then (the parser turns it into a space).
word = st.tuples(
    st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=12).filter(str.strip),
    st.sampled_from(["", "\x00", "\x07", "\x9f"]),
).map("".join)
valid_requests = st.fixed_dictionaries(
    {
        "query": word,
        "documents": st.lists(
            st.fixed_dictionaries({"id": word.filter(lambda w: len(w) <= 8), "title": st.just("") | word,
                                   "summary": word}),
            min_size=1,
            max_size=5,
            unique_by=lambda d: d["id"],
        ),
    },
    optional={"top_k": st.integers(1, 5)},
)  # fmt: skip


def body_bytes(value) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()
