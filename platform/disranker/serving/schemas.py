"""The /rank request and response, and the checks that turn a bad body into a 4xx naming the field.

Parsing lives here, apart from Serve, so every rejection is unit-tested without starting Ray. Field types are strict:
``{"query": 7}`` is an error, not the text "7". Nothing a client sends can raise anything but ``RequestError``: the
JSON parser's own limits (nesting depth, integer size) and text the tokenizer cannot take (lone surrogates) are
refused here, before any model work; other control characters become spaces.

| status | when                                                                                                  |
|--------|-------------------------------------------------------------------------------------------------------|
| 400    | the body is not JSON, nests too deeply to parse, or holds an integer over ``MAX_INT_DIGITS`` digits    |
| 413    | the body is larger than ``max_body_bytes``                                                            |
| 422    | a field is missing, of the wrong type, empty, over a limit (documents, top_k, text length), or not text |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

MAX_INT_DIGITS = 18  # the only integer field is top_k
# C0 and C1 control characters except tab, newline and carriage return: shown as nothing, tokenised as noise.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RequestLimits:
    """What one request may hold (``RankerArgs`` sets them)."""

    max_documents: int = 100
    max_query_chars: int = 1_000
    max_document_chars: int = 20_000  # title and summary together
    max_id_chars: int = 256


class RequestError(Exception):
    """A request the endpoint refuses; ``field`` is the dotted path of the offending value (``documents[2].title``)."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message

    def body(self) -> dict:
        return {"error": {"field": self.field, "message": self.message}}


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(min_length=1)
    title: StrictStr = ""  # may be empty (MS MARCO passages have none); the document is then its summary alone
    summary: StrictStr = ""


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr
    documents: list[Document]
    top_k: StrictInt | None = Field(None, ge=1)  # None: every document, ranked


class RankedDocument(BaseModel):
    id: str
    score: float  # the student's raw logit: comparable within one model, not a probability
    rank: int  # 1 = best
    truncated: bool  # the document was cut to fit the model's max_length


class RankResponse(BaseModel):
    model: str
    results: list[RankedDocument]
    truncated_documents: int  # how many of the request's documents were cut (top_k may hide some of them)
    max_length: int  # tokens per (query, document) pair the model reads


def parse_rank_request(body: bytes, limits: RequestLimits) -> RankRequest:
    """The validated request, or a ``RequestError`` naming the first offending field."""
    return check_rank_request(validated(RankRequest, load_json(body)), limits)


def validated(model: type[BaseModel], data):
    """``data`` as ``model``, or a 422 ``RequestError`` naming the first offending field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RequestError(422, _field_path(first["loc"]) or "body", first["msg"]) from exc


def check_rank_request(request: RankRequest, limits: RequestLimits) -> RankRequest:
    """The checks past the types: limits, empty texts, repeated ids; texts cleaned (``_clean_text``)."""
    request.query = _clean_text(request.query, "query", limits.max_query_chars)
    if not request.query.strip():
        raise RequestError(422, "query", "the query is empty")
    if not request.documents:
        raise RequestError(422, "documents", "no documents to rank")
    if len(request.documents) > limits.max_documents:
        raise RequestError(
            422, "documents", f"{len(request.documents)} documents; this endpoint ranks at most {limits.max_documents}"
        )
    if request.top_k is not None and request.top_k > limits.max_documents:
        raise RequestError(422, "top_k", f"top_k={request.top_k} is above the {limits.max_documents} documents allowed")
    seen: set[str] = set()
    for i, doc in enumerate(request.documents):
        _clean_text(doc.id, f"documents[{i}].id", limits.max_id_chars)  # checked only: an id comes back verbatim
        doc.title = _clean_text(doc.title, f"documents[{i}].title", limits.max_document_chars)
        doc.summary = _clean_text(doc.summary, f"documents[{i}].summary", limits.max_document_chars)
        if len(doc.title) + len(doc.summary) > limits.max_document_chars:
            raise RequestError(
                422, f"documents[{i}]", f"title + summary are over {limits.max_document_chars} characters"
            )
        if not (doc.title.strip() or doc.summary.strip()):
            raise RequestError(422, f"documents[{i}]", "the document has neither a title nor a summary")
        if doc.id in seen:
            raise RequestError(422, f"documents[{i}].id", f"id {doc.id!r} appears twice")
        seen.add(doc.id)
    return request


def load_json(body: bytes):
    """``json.loads`` with the parser's failure modes turned into 400s: nesting too deep for its recursion
    (RecursionError), integers too long to convert (ValueError), NaN / Infinity (not JSON)."""

    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise RequestError(400, "body", f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS}")
        return int(text)

    def parse_constant(name: str):
        raise RequestError(400, "body", f"{name} is not a JSON number")

    try:
        return json.loads(body, parse_int=parse_int, parse_constant=parse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "body", f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestError(400, "body", "the body nests arrays or objects too deeply") from exc


def _clean_text(text: str, field: str, max_chars: int) -> str:
    """``text`` with control characters as spaces; refused when over ``max_chars`` or not encodable (a lone
    surrogate such as ``"\\ud800"`` is valid JSON but not text)."""
    if len(text) > max_chars:
        raise RequestError(422, field, f"{len(text)} characters; at most {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(422, field, f"not valid text: {exc.reason} at character {exc.start}") from exc
    return _CONTROL.sub(" ", text)


def rank_documents(
    request: RankRequest, scores: list[float], truncated: list[bool], model: str, max_length: int
) -> RankResponse:
    """Sort by score (ties keep the request's order) and cut to ``top_k``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if request.top_k is not None:
        order = order[: request.top_k]
    results = [
        RankedDocument(id=request.documents[i].id, score=scores[i], rank=rank, truncated=truncated[i])
        for rank, i in enumerate(order, start=1)
    ]
    return RankResponse(model=model, results=results, truncated_documents=sum(truncated), max_length=max_length)


def _field_path(loc: tuple) -> str:
    """``("documents", 2, "title")`` → ``documents[2].title``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
