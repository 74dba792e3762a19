"""The /rank request and response, and the checks that turn a bad body into a 4xx naming the field.

Parsing lives here, apart from Serve, so every rejection is unit-tested without starting Ray. Field types are strict:
``{"query": 7}`` is an error, not the text "7".

| status | when                                                                                  |
|--------|---------------------------------------------------------------------------------------|
| 400    | the body is not JSON                                                                  |
| 413    | the body is larger than ``max_body_bytes``                                            |
| 422    | a field is missing, of the wrong type, empty, or over a limit (more documents, top_k) |
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError


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


def parse_rank_request(body: bytes, max_documents: int) -> RankRequest:
    """The validated request, or a ``RequestError`` naming the first offending field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "body", f"the body is not valid JSON: {exc}") from exc
    try:
        request = RankRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RequestError(422, _field_path(first["loc"]) or "body", first["msg"]) from exc
    if not request.query.strip():
        raise RequestError(422, "query", "the query is empty")
    if not request.documents:
        raise RequestError(422, "documents", "no documents to rank")
    if len(request.documents) > max_documents:
        raise RequestError(
            422, "documents", f"{len(request.documents)} documents; this endpoint ranks at most {max_documents}"
        )
    seen: set[str] = set()
    for i, doc in enumerate(request.documents):
        if not (doc.title.strip() or doc.summary.strip()):
            raise RequestError(422, f"documents[{i}]", "the document has neither a title nor a summary")
        if doc.id in seen:
            raise RequestError(422, f"documents[{i}].id", f"id {doc.id!r} appears twice")
        seen.add(doc.id)
    return request


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
