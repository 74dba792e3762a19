"""The Arrow schemas of the tables that flow between stages (the data contracts of DESIGN.md).

| table     | columns                                                        | written by        | read by          |
|-----------|----------------------------------------------------------------|-------------------|------------------|
| clicks    | query_id, query, doc_id, title, summary                        | demo / importers  | teacher CPT      |
| judgments | clicks columns + label:int8 (0–4 graded)                       | demo / importers  | SFT, evaluation  |
| pool      | clicks columns                                                 | demo / importers  | labeling         |
| labels    | pool columns + teacher_score:float32 (raw logit), teacher:str  | labeling          | distillation     |
| scores    | query_id, doc_id, score:float32, model:str                     | any scorer        | evaluation, TREC |
| rejected  | table, row:int64, reason, record (the row as JSON)             | every validator   | people           |

Every text field must be non-empty except ``title``: MS MARCO passages and many web documents have none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

MIN_LABEL, MAX_LABEL = 0, 4

_QUERY_DOC = [
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("query", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("summary", pa.string(), nullable=False),
]

CLICKS = pa.schema(_QUERY_DOC)
POOL = pa.schema(_QUERY_DOC)
JUDGMENTS = pa.schema([*_QUERY_DOC, pa.field("label", pa.int8(), nullable=False)])
LABELS = pa.schema(
    [
        *_QUERY_DOC,
        pa.field("teacher_score", pa.float32(), nullable=False),
        pa.field("teacher", pa.string(), nullable=False),
    ]
)
SCORES = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
    ]
)
REJECTED = pa.schema(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)

CONTRACTS: dict[str, pa.Schema] = {
    "clicks": CLICKS,
    "judgments": JUDGMENTS,
    "pool": POOL,
    "labels": LABELS,
    "scores": SCORES,
}

# Text fields that may hold the empty string (every other string field must have a non-blank value).
MAY_BE_EMPTY = frozenset({"title"})
# Each (query_id, doc_id) appears once per table: a second copy would count twice in training and metrics.
KEY = ("query_id", "doc_id")


def stable_keys(texts: Iterable[str]) -> np.ndarray:
    """A stable 63-bit hash of each string (the same in every process and run, unlike ``hash``): query keys that pick a
    worker's share, and compact stand-ins for (query_id, doc_id) keys when looking for repeats across a pool."""
    digests = (hashlib.blake2b(text.encode(), digest_size=8).digest() for text in texts)
    return np.fromiter((int.from_bytes(d, "little") >> 1 for d in digests), dtype=np.int64)


def contract(name: str) -> pa.Schema:
    """The schema of table ``name``; an unknown name is an error listing the known ones."""
    try:
        return CONTRACTS[name]
    except KeyError:
        raise ValueError(f"unknown table contract {name!r}; known: {', '.join(CONTRACTS)}") from None
