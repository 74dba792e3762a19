"""A request's (query, document) pairs as the student's token ids, made in the request's thread, and a batch of them
padded into the model's input arrays.

Why not ``models.text.encode_student`` on each batch, as evaluation does: it tokenises the query once per document,
the length check (which documents get cut) tokenised every document a second time, and it ran on the batch's path,
where the model waited for it. Here the query and the documents are tokenised once each, in the request's thread, and
each pair is assembled by the tokenizer's own post-processor (``tokenizers.Tokenizer.post_process``: longest-first
truncation to ``max_length``, the special tokens, the token types), which is what the tokenizer does to a text pair:
the arrays equal ``encode_student``'s (tests/unit/test_pair_encoding.py). A 50-document request of the demo:
2.2 ms against 6.2 ms (Intel Xeon with AMX, one core).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from disranker.models.text import encode_student, student_document
from disranker.serving.schemas import RequestError

# One pair: its input ids and token types, special tokens included, unpadded.
Pair = tuple[list[int], list[int]]


# The arrays ``pad`` makes; a tokenizer whose model takes other inputs is refused at replica start.
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
# The document checked against ``encode_student`` when an encoder is made: long enough to be cut at any max_length.
SELF_CHECK_TITLE, SELF_CHECK_SUMMARY = "a title", "a summary of a document about cats and dogs " * 100


@dataclass(frozen=True)
class EncodedRequest:
    pairs: list[Pair]  # one per document, in the request's order
    truncated: list[bool]  # whether the model reads only part of each document (the longer side is cut first)


class PairEncoder:
    """The student's pair encoding for the endpoint (module docstring)."""

    def __init__(self, tokenizer, max_length: int):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(
                f"{type(tokenizer).__name__} has no fast tokenizer (the `tokenizers` library) to serve with: save the "
                "student with a fast tokenizer (tokenizer.json)"
            )
        # A copy whose truncation is set once: the student's own tokenizer changes its settings on every call.
        self.backend = copy.deepcopy(backend)
        self.backend.no_padding()
        self.backend.enable_truncation(max_length, strategy="longest_first", direction=tokenizer.truncation_side)
        self.max_length = max_length
        self.specials = tokenizer.num_special_tokens_to_add(pair=True)  # [CLS] q [SEP] d [SEP] → 3 for BERT
        self.input_names = tuple(tokenizer.model_input_names)
        if unknown := set(self.input_names) - set(INPUT_NAMES):
            raise ValueError(
                f"the student's tokenizer makes inputs {sorted(unknown)}; the endpoint makes {INPUT_NAMES}"
            )
        self.pad_id = tokenizer.pad_token_id
        self.pad_left = tokenizer.padding_side == "left"
        self._check_against(tokenizer)

    def _check_against(self, tokenizer) -> None:
        """Refuse to serve (at replica start) a tokenizer for which this encoding differs from evaluation's: pairs
        whose document is cut, and whose query is cut too (longest first)."""
        long_query = "cat " * max(1, (self.max_length - self.specials - 1) * 2 // 3)
        for query in ("a query", long_query):
            expected = encode_student(tokenizer, [query], [SELF_CHECK_TITLE], [SELF_CHECK_SUMMARY], self.max_length,
                                      return_tensors="np")  # fmt: skip
            got = self.pad(self.encode(query, [SELF_CHECK_TITLE], [SELF_CHECK_SUMMARY]).pairs)
            for name, array in expected.items():
                if name not in got or not np.array_equal(got[name], array):
                    raise ValueError(
                        f"{type(tokenizer).__name__}: the endpoint's pair encoding differs from encode_student's in "
                        f"{name!r}; this tokenizer cannot be served"
                    )

    def encode(self, query: str, titles: Sequence[str], summaries: Sequence[str]) -> EncodedRequest:
        """Every document's pair with ``query``, and which documents do not fit beside it (they are cut).

        Raises a 422 ``RequestError`` on ``query`` when the query alone leaves no room for a document."""
        documents = [student_document(t, s) for t, s in zip(titles, summaries, strict=True)]
        query_encoding, *document_encodings = self.backend.encode_batch([query, *documents], add_special_tokens=False)
        # The backend cuts a text at max_length; the rest is in its overflow.
        query_tokens = len(query_encoding.ids) + sum(len(part.ids) for part in query_encoding.overflowing)
        if self.max_length - self.specials - query_tokens < 1:
            raise RequestError(
                422, "query", f"the query is {query_tokens} tokens; the model reads {self.max_length} per pair"
            )
        pairs = [self.backend.post_process(query_encoding, document) for document in document_encodings]
        return EncodedRequest(
            pairs=[(pair.ids, pair.type_ids) for pair in pairs],
            # A document is cut when fewer of its tokens reach the pair (sequence 1) than it has, overflow included.
            truncated=[
                pair.sequence_ids.count(1) < len(document.ids) + sum(len(part.ids) for part in document.overflowing)
                for pair, document in zip(pairs, document_encodings, strict=True)
            ],
        )

    def pad(self, pairs: Sequence[Pair]) -> dict[str, np.ndarray]:
        """``pairs`` as the model's int64 input arrays, padded to the longest (as the tokenizer pads)."""
        width = max((len(ids) for ids, _ in pairs), default=0)
        arrays = {
            "input_ids": np.full((len(pairs), width), self.pad_id, dtype=np.int64),
            "token_type_ids": np.zeros((len(pairs), width), dtype=np.int64),
            "attention_mask": np.zeros((len(pairs), width), dtype=np.int64),
        }
        for row, (ids, types) in enumerate(pairs):
            columns = slice(width - len(ids), width) if self.pad_left else slice(0, len(ids))
            arrays["input_ids"][row, columns] = ids
            arrays["token_type_ids"][row, columns] = types
            arrays["attention_mask"][row, columns] = 1
        return {name: arrays[name] for name in self.input_names}
