"""The ranking endpoint: a FastAPI ingress on a Ray Serve deployment that batches (query, document) pairs.

Routes: ``POST /rank``; the rerank shapes other clients speak, ``POST /v1/rerank`` (Cohere / Jina) and ``POST /rerank``
(text-embeddings-inference), see ``serving.rerank_api``; ``GET /healthz`` (no auth: load balancers and KubeRay probe
it); ``GET /info`` (model id, lineage, runtime (torch, or onnx-int8 with its agreement check), limits, batching knobs
and this replica's counters). When ``DISRANKER_API_TOKEN`` is set in the replica's environment, every route but
/healthz needs ``Authorization: Bearer <token>`` (401 otherwise).

Every pair of every request goes through one ``@serve.batch`` queue, so concurrent requests share model calls; its
size and wait come from ``user_config`` and change on running replicas through ``reconfigure()``. Replicas scale
between ``autoscaling.min_replicas`` and ``max_replicas`` on requests in flight.

    serve run serve/config.yaml                 # or: disranker serve --config serve/config.yaml
"""

# No `from __future__ import annotations` here: FastAPI reads the route parameters' annotations (``request: Request``)
# from the methods Serve's ingress wraps, where postponed (string) annotations no longer resolve.
import asyncio
import hmac
import math
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig

from disranker.serving import rerank_api
from disranker.serving.config import BatchingArgs, LocalServe, RankerArgs
from disranker.serving.runtime import load_scorer
from disranker.serving.schemas import RankRequest, RequestError, parse_rank_request, rank_documents

TOKEN_ENV = "DISRANKER_API_TOKEN"
# Serve's proxy must answer its readiness check within 5 s, three times over; with another job on every core it may
# not (seen: `disranker serve` died on a loaded 2-core machine). Raised for a Ray that `start_local` starts.
SLOW_START_S = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": 60, "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": 60}

# No /docs, /redoc or /openapi.json: they would be open even with a token set (the API is in serve/README.md).
api = FastAPI(
    title="disranker",
    description="Rank documents for a query with the distilled student.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
HEALTH_PAIR = ("health check", "", "a document the replica scores to prove its model still answers")


class ModelFailure(RuntimeError):
    """Every pair of a batch failed, alone too: the replica's model, not a request, is at fault (a 503)."""


@api.exception_handler(RequestError)
async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
    headers = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "1"}}.get(exc.status)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or streamed, e.g. chunked)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "body", f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Serve's ingress copies the module's globals when it decorates the class: helpers the methods call go above it.
@serve.deployment
@serve.ingress(api)
class Ranker:
    def __init__(self, args: dict):
        self.args = RankerArgs.model_validate(args)
        self.scorer = load_scorer(self.args)
        self.token = os.environ.get(TOKEN_ENV) or None
        self.counters = {"requests": 0, "batches": 0, "pairs": 0}

    async def check_health(self) -> None:
        """Serve calls this every ``health_check_period_s``: a replica whose model no longer scores is replaced."""
        score = (await asyncio.to_thread(self.scorer.score, *([text] for text in HEALTH_PAIR)))[0]
        if not math.isfinite(score):
            raise RuntimeError(f"the model scored the health-check pair {score}")

    def reconfigure(self, user_config: dict) -> None:
        """Apply new batching knobs (``serve deploy`` with a changed ``user_config``) without a restart."""
        batching = BatchingArgs.model_validate(user_config)
        self._score_pairs.set_max_batch_size(batching.max_batch_size)
        self._score_pairs.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)

    # max_batch_size counts pairs while max_ongoing_requests counts requests, so Serve's warning that the first is
    # larger is expected here: one request brings up to max_documents pairs.
    @serve.batch(max_batch_size=BatchingArgs().max_batch_size, batch_wait_timeout_s=BatchingArgs().batch_wait_timeout_s)
    async def _score_pairs(self, pairs: list[tuple[str, str, str]]) -> list[float]:
        self.counters["batches"] += 1
        self.counters["pairs"] += len(pairs)
        # In a thread, so the event loop keeps accepting requests (they queue up for the next batch) meanwhile.
        return await asyncio.to_thread(self._score_isolated, pairs)

    def _score_isolated(self, pairs: list[tuple[str, str, str]]) -> list[float]:
        """The batch's scores; if the batch fails, pair by pair, NaN where a pair fails, so that one request's
        document cannot fail the other requests sharing its batch."""
        try:
            return self.scorer.score(*zip(*pairs, strict=True)).tolist()
        except Exception as batch_error:
            scores = []
            for pair in pairs:
                try:
                    scores.append(float(self.scorer.score(*([text] for text in pair))[0]))
                except Exception:
                    scores.append(math.nan)
            if not any(math.isfinite(score) for score in scores):  # not one input's doing: the model is failing
                raise ModelFailure(f"{type(batch_error).__name__}: {batch_error}") from batch_error
            return scores

    @api.post("/rank")
    async def rank(self, request: Request) -> JSONResponse:
        parsed = await self._parse(request, parse_rank_request)
        scores, truncated = await self._score_request(parsed, "documents")
        response = rank_documents(parsed, scores, truncated, self.scorer.model_id, self.scorer.max_length)
        return JSONResponse(response.model_dump())

    @api.post("/v1/rerank")
    async def rerank_cohere(self, request: Request) -> JSONResponse:
        """Cohere / Jina rerank (``serving.rerank_api``)."""
        asked, parsed = await self._parse(request, rerank_api.parse_cohere)
        scores, _ = await self._score_request(parsed, "documents")
        return JSONResponse(rerank_api.cohere_response(asked, parsed, scores, self.scorer.model_id))

    @api.post("/rerank")
    async def rerank_tei(self, request: Request) -> JSONResponse:
        """text-embeddings-inference rerank (``serving.rerank_api``)."""
        asked, parsed = await self._parse(request, rerank_api.parse_tei)
        scores, truncated = await self._score_request(parsed, "texts")
        return JSONResponse(rerank_api.tei_response(asked, truncated, scores))

    async def _parse(self, request: Request, parse):
        self._check_token(request)
        body = await _read_body(request, self.args.max_body_bytes)
        # Parsing a large body takes milliseconds: in a thread, so the event loop keeps serving.
        return await asyncio.to_thread(parse, body, self.args.limits())

    async def _score_request(self, parsed: RankRequest, documents_field: str) -> tuple[list[float], list[bool]]:
        """Every document's score (through the shared batch queue) and whether the model had to cut it."""
        docs = parsed.documents
        titles, summaries = [d.title for d in docs], [d.summary for d in docs]
        truncated = await asyncio.to_thread(self.scorer.truncated, parsed.query, titles, summaries)
        self.counters["requests"] += 1
        try:
            scores = await asyncio.gather(*(self._score_pairs((parsed.query, d.title, d.summary)) for d in docs))
        except ModelFailure as exc:
            raise RequestError(503, "model", f"the model failed on this batch ({exc}); retry shortly") from exc
        failed = next((i for i, score in enumerate(scores) if not math.isfinite(score)), None)
        if failed is not None:
            raise RequestError(422, f"{documents_field}[{failed}]", "the model could not score this document")
        return list(scores), truncated

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/info")
    async def info(self, request: Request) -> dict:
        self._check_token(request)
        return {
            "model": self.scorer.model_id,
            "model_spec": self.args.model,
            "lineage": self.scorer.lineage,
            # torch or onnx-int8, and for onnx-int8 the agreement check against torch (numbers, source, reason).
            "runtime": self.scorer.runtime,
            "max_length": self.args.max_length,
            "limits": {
                name: getattr(self.args, name)
                for name in ("max_documents", "max_query_chars", "max_document_chars", "max_body_bytes")
            },
            "batching": {
                "max_batch_size": self._score_pairs._get_max_batch_size(),
                "batch_wait_timeout_s": self._score_pairs._get_batch_wait_timeout_s(),
            },
            "replica": serve.get_replica_context().replica_id.unique_id,
            "counters": dict(self.counters),  # this replica's, since it started
        }

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise RequestError(401, "Authorization", "a valid 'Authorization: Bearer <token>' header is required")


def build_app(args: RankerArgs) -> Application:
    """The Serve application for ``args`` (``serve run`` passes the config's ``args`` mapping, validated here)."""
    # `serve run` hands over a RankerArgs (Serve validates the mapping against the annotation); Python callers may pass
    # the mapping itself.
    ranker_args = args if isinstance(args, RankerArgs) else RankerArgs.model_validate(args)
    deployment = Ranker.options(
        autoscaling_config=ranker_args.autoscaling.model_dump(),
        max_ongoing_requests=ranker_args.max_ongoing_requests,
        max_queued_requests=ranker_args.max_queued_requests,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=ranker_args.retry_after_s),
        user_config=ranker_args.batching.model_dump(),
        ray_actor_options={"num_cpus": ranker_args.num_cpus},
    )
    return deployment.bind(ranker_args.model_dump())


def start_local(local: LocalServe) -> str:
    """Start Serve on this machine's Ray (started here when needed) with ``local``'s application; returns its URL."""
    for name, seconds in SLOW_START_S.items():  # a busy machine needs longer than Serve's checks allow
        os.environ.setdefault(name, str(seconds))  # read by the Serve controller, which Ray starts from here
    http = {"host": local.host, "port": local.port, "request_timeout_s": local.request_timeout_s}
    serve.start(http_options={k: v for k, v in http.items() if v is not None})
    serve.run(build_app(local.args), name=local.app_name, route_prefix=local.route_prefix)
    return local.url
