"""The rerank shapes existing clients already speak, mapped onto the same validated request as ``/rank``.

- ``POST /v1/rerank`` and ``POST /v2/rerank`` — Cohere / Jina (what Cohere's SDK, LangChain, LlamaIndex and Haystack
  rerankers send): ``{"model"?, "query", "documents": [text | {"text"}], "top_n"?, "return_documents"?}`` →
  ``{"id", "model", "results": [{"index", "relevance_score", "document"?: {"text"}}], "meta": {"billed_units"}}``;
  ``relevance_score`` is sigmoid(student logit), in (0, 1) and ordered like the logit.
- ``POST /rerank`` — text-embeddings-inference: ``{"query", "texts": [text], "raw_scores"?, "return_text"?,
  "truncate"?, "top_n"?}`` → ``[{"index", "score", "text"?}]``; ``score`` is sigmoid(logit) unless ``raw_scores``.
  ``top_n`` is not TEI's (which ignores unknown fields) but LiteLLM sends it: it cuts the list as Cohere's does.

A plain-text document becomes ``title="", summary=text``. Fields the student cannot honour are accepted where the
answer is the same (``model``: one model serves; ``priority``: one queue serves all; ``truncate: true`` is what
always happens; ``max_tokens_per_doc``: the model reads its own max_length, shown by /info) and refused where it would
not be (``rank_fields`` other than ``["text"]``; ``truncate: false`` with a document the model must cut; Cohere v2's
``relevant_spans``, as an unknown field). Every other check
is ``/rank``'s (``schemas.parse_rank_request``), so a bad body gets the same 4xx naming the field, in the caller's
field names (``documents[2]``, ``texts[2]``).
"""

from __future__ import annotations

import math
import re
import uuid

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from disranker.serving.schemas import RankRequest, RequestError, RequestLimits, check_rank_request, load_json, validated


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="allow")  # Cohere's document objects may carry other fields; the text is ranked

    text: StrictStr


class CohereRerank(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr | TextDocument]
    top_n: StrictInt | None = None
    return_documents: StrictBool = False
    max_tokens_per_doc: StrictInt | None = None  # Cohere v2: accepted; the model's max_length is what applies
    rank_fields: list[StrictStr] | None = None  # Cohere v1 for object documents; only "text" is ranked
    priority: StrictInt | None = None  # Cohere v2: accepted; every request waits in the same queue


class TeiRerank(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr
    texts: list[StrictStr]
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool = True
    truncation_direction: StrictStr = "Right"
    top_n: StrictInt | None = None


def _as_rank_request(query: str, texts: list[str], top: int | None, names: dict[str, str], limits: RequestLimits):
    """``/rank``'s request for these texts, checked by ``/rank``'s rules; ``names`` renames fields in errors
    (``documents`` → the caller's list, ``top_k`` → ``top_n``)."""
    data = {
        "query": query,
        "documents": [{"id": str(i), "summary": text} for i, text in enumerate(texts)],
        "top_k": top,
    }
    try:
        return check_rank_request(validated(RankRequest, data), limits)
    except RequestError as exc:
        field = re.sub(r"^(documents(\[\d+\])?)(\.\w+)?$", lambda m: names["documents"] + (m.group(2) or ""), exc.field)
        renamed = names.get(field, field)
        raise RequestError(exc.status, renamed, exc.message.replace(f"{field}=", f"{renamed}=")) from exc


def parse_cohere(body: bytes, limits: RequestLimits) -> tuple[CohereRerank, RankRequest]:
    try:
        request = validated(CohereRerank, load_json(body))
    except RequestError as exc:  # pydantic names the union branch it tried ("documents[0].str"): drop it
        field = re.sub(r"^(documents\[\d+\])\.(str|TextDocument)", r"\1", exc.field)
        raise RequestError(exc.status, field, exc.message) from exc
    if request.rank_fields not in (None, ["text"]):
        raise RequestError(422, "rank_fields", "only the documents' 'text' is ranked")
    texts = [doc if isinstance(doc, str) else doc.text for doc in request.documents]
    names = {"documents": "documents", "top_k": "top_n"}
    return request, _as_rank_request(request.query, texts, request.top_n, names, limits)


def parse_tei(body: bytes, limits: RequestLimits) -> tuple[TeiRerank, RankRequest]:
    request = validated(TeiRerank, load_json(body))
    if request.truncation_direction != "Right":
        raise RequestError(422, "truncation_direction", "only 'Right' (the document's end is cut) is supported")
    names = {"documents": "texts", "top_k": "top_n"}
    return request, _as_rank_request(request.query, request.texts, request.top_n, names, limits)


def sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1.0 + math.exp(logit))


def ordered(scores: list[float], top: int | None) -> list[int]:
    """Document indices by descending score (ties keep the request's order), cut to ``top``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return order[:top] if top is not None else order


def cohere_response(request: CohereRerank, ranked: RankRequest, scores: list[float], model: str) -> dict:
    results = []
    for i in ordered(scores, request.top_n):
        result = {"index": i, "relevance_score": sigmoid(scores[i])}
        if request.return_documents:
            result["document"] = {"text": ranked.documents[i].summary}
        results.append(result)
    return {
        "id": str(uuid.uuid4()),
        "model": model,
        "results": results,
        "meta": {"billed_units": {"search_units": 1}},
    }


def tei_response(request: TeiRerank, truncated: list[bool], scores: list[float]) -> list[dict]:
    if not request.truncate and any(truncated):
        index = truncated.index(True)
        raise RequestError(422, f"texts[{index}]", "longer than the model reads, and truncate is false")
    results = []
    for i in ordered(scores, request.top_n):
        result = {"index": i, "score": scores[i] if request.raw_scores else sigmoid(scores[i])}
        if request.return_text:
            result["text"] = request.texts[i]
        results.append(result)
    return results
