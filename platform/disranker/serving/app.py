"""The ranking endpoint: a FastAPI ingress deployment in front of the model replicas (``serving.replica``).

Routes: ``POST /rank``; the rerank shapes other clients speak, ``POST /v1/rerank`` and ``/v2/rerank`` (Cohere / Jina)
and ``POST /rerank`` (text-embeddings-inference), see ``serving.rerank_api``; ``GET /healthz`` (no auth: load
balancers and KubeRay probe it); ``GET /info`` (model id, lineage, runtime (torch, or onnx-int8 with its agreement
check), limits, batching knobs and the answering replica's counters). When ``DISRANKER_API_TOKEN`` is set in the
replicas' environment, every route but /healthz needs ``Authorization: Bearer <token>`` (401 otherwise).

The ingress checks the token, reads and validates the body, and asks a model replica through a handle. Why two
deployments: when a replica dies with requests in flight, Serve's proxy answers them 500; the ingress instead sends
them again (scoring is idempotent) to a live or replacement replica, and answers 503 with Retry-After only when that
fails too. A full replica queue is a 503 with Retry-After as well.

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
from ray.exceptions import RayActorError
from ray.serve import Application
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from disranker.runtime import ensure_ray
from disranker.serving import rerank_api
from disranker.serving.config import LocalServe, RankerArgs
from disranker.serving.replica import Ranker, Scored
from disranker.serving.schemas import RankRequest, RequestError, parse_rank_request, rank_documents

TOKEN_ENV = "DISRANKER_API_TOKEN"
# Serve's proxy must answer its readiness check within 5 s, three times over; with another job on every core it may
# not (seen: `disranker serve` died on a loaded 2-core machine). Raised for a Ray that `start_local` starts.
SLOW_START_S = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": 60, "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": 60}
# Serve's gRPC data plane (Ray's "high throughput" switches, without its direct ingress, which moves the HTTP port):
# the proxy and the ingress reach the next replica over gRPC instead of Ray actor calls. A 50-document request's CPU
# in the ingress and the proxy fell from ~9 + ~6.5 ms to ~6 + ~4.5 ms, and pairs/s rose from 567-650 to 678-782
# (benchmarks/serve_load.py, OpenVINO, 2 cores). Read by Serve's processes when they start; set "0" to keep Ray's.
GRPC_TRANSPORT_ENV = {"RAY_SERVE_PROXY_USE_GRPC": "1", "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"}
# A request is sent to a model replica at most this often: once, and again if that replica died under it. Not more,
# so a request that itself kills replicas (e.g. by memory) cannot take down the next ones in turn.
MODEL_ATTEMPTS = 2
REPLICA_GONE = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)
# torch's OpenMP threads spin on a CPU after each forward by default; in a model replica that shares its cores with
# Serve's proxy and the ingress, the spinning kept them from the CPU: a 2-document request took 190 ms, 52 ms with
# idle threads sleeping at once (tiny student, 2 cores, benchmarks/serve_load.py's breakdown).
MODEL_REPLICA_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
# Bodies up to this size are parsed on the event loop: a 50-document request (6 KB) parses in 0.2 ms, less than the
# hop to a thread and back costs.
INLINE_PARSE_BYTES = 64 * 1024

# No /docs, /redoc or /openapi.json: they would be open even with a token set (the API is in serve/README.md).
api = FastAPI(
    title="disranker",
    description="Rank documents for a query with the distilled student.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


class Unavailable(RequestError):
    """A 503 the client should retry after ``retry_after_s``: no model replica could take or finish the request."""

    def __init__(self, field: str, message: str, retry_after_s: float):
        super().__init__(503, field, message)
        self.retry_after_s = retry_after_s


@api.exception_handler(RequestError)
async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, Unavailable):
        headers = {"Retry-After": str(math.ceil(exc.retry_after_s))}
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


async def ask_model(model: DeploymentHandle, method: str, args: tuple, retry_after_s: float):
    """A model replica's answer to ``method(*args)``; sent again once when the replica died under the request."""
    for attempt in range(1, MODEL_ATTEMPTS + 1):
        try:
            return await getattr(model, method).remote(*args)
        except BackPressureError as exc:
            raise Unavailable("server", "every model replica is busy; retry shortly", retry_after_s) from exc
        except REPLICA_GONE as exc:
            if attempt == MODEL_ATTEMPTS:
                raise Unavailable("server", f"the model replica stopped ({type(exc).__name__}); retry shortly",
                                  retry_after_s) from exc  # fmt: skip


# Serve's ingress copies the module's globals when it decorates the class: helpers the methods call go above it.
@serve.deployment
@serve.ingress(api)
class RankerIngress:
    def __init__(self, args: dict, model: DeploymentHandle):
        self.args = RankerArgs.model_validate(args)
        self.model = model
        self.token = os.environ.get(TOKEN_ENV) or None

    @api.post("/rank")
    async def rank(self, request: Request) -> JSONResponse:
        parsed = await self._parse(request, parse_rank_request)
        scored = await self._score_request(parsed, "documents")
        response = rank_documents(parsed, scored.scores, scored.truncated, scored.model, scored.max_length)
        return JSONResponse(response.model_dump())

    @api.post("/v1/rerank")
    @api.post("/v2/rerank")
    async def rerank_cohere(self, request: Request) -> JSONResponse:
        """Cohere / Jina rerank (``serving.rerank_api``)."""
        asked, parsed = await self._parse(request, rerank_api.parse_cohere)
        scored = await self._score_request(parsed, "documents")
        return JSONResponse(rerank_api.cohere_response(asked, parsed, scored.scores, scored.model))

    @api.post("/rerank")
    async def rerank_tei(self, request: Request) -> JSONResponse:
        """text-embeddings-inference rerank (``serving.rerank_api``)."""
        asked, parsed = await self._parse(request, rerank_api.parse_tei)
        scored = await self._score_request(parsed, "texts")
        return JSONResponse(rerank_api.tei_response(asked, scored.truncated, scored.scores))

    async def _parse(self, request: Request, parse):
        self._check_token(request)
        body = await _read_body(request, self.args.max_body_bytes)
        if len(body) <= INLINE_PARSE_BYTES:
            return parse(body, self.args.limits())
        # Parsing a large body takes milliseconds: in a thread, so the event loop keeps serving.
        return await asyncio.to_thread(parse, body, self.args.limits())

    async def _score_request(self, parsed: RankRequest, documents_field: str) -> Scored:
        """Every document's score and whether the model had to cut it, or the error that answers the request."""
        titles, summaries = [d.title for d in parsed.documents], [d.summary for d in parsed.documents]
        scored: Scored = await self._ask_model("score", parsed.query, titles, summaries)
        if scored.refused is not None:
            raise RequestError(*scored.refused)
        if scored.model_failure is not None:
            raise Unavailable("model", f"the model failed on this batch ({scored.model_failure}); retry shortly",
                              self.args.retry_after_s)  # fmt: skip
        failed = next((i for i, score in enumerate(scored.scores) if not math.isfinite(score)), None)
        if failed is not None:
            raise RequestError(422, f"{documents_field}[{failed}]", "the model could not score this document")
        return scored

    async def _ask_model(self, method: str, *args):
        return await ask_model(self.model, method, args, self.args.retry_after_s)

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/info")
    async def info(self, request: Request) -> dict:
        self._check_token(request)
        replica = await self._ask_model("info")
        limits = ("max_documents", "max_query_chars", "max_document_chars", "max_body_bytes")
        return {
            "model": replica.pop("model"),
            "model_spec": self.args.model,
            **replica,
            "limits": {name: getattr(self.args, name) for name in limits},
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
    backpressure = BackpressureConfig(status_code=503, retry_after_s=ranker_args.retry_after_s)
    model = Ranker.options(
        autoscaling_config=ranker_args.autoscaling.model_dump(),
        max_ongoing_requests=ranker_args.max_ongoing_requests,
        max_queued_requests=ranker_args.max_queued_requests,
        backpressure_config=backpressure,
        user_config=ranker_args.batching.model_dump(),
        ray_actor_options={"num_cpus": ranker_args.num_cpus, "runtime_env": {"env_vars": MODEL_REPLICA_ENV}},
    ).bind(ranker_args.model_dump())
    # The ingress only reads bodies and waits on the model: no CPU reserved, and room for twice what the model replicas
    # can hold or queue, so that overload is decided at the model's queue (a 503 at once) and not by requests waiting
    # in the proxy for an ingress slot only to be refused later (seen: 503s after 8 s when the two were equal).
    most = ranker_args.autoscaling.max_replicas * (ranker_args.max_ongoing_requests + ranker_args.max_queued_requests)
    ingress = RankerIngress.options(
        num_replicas=ranker_args.ingress_replicas,
        max_ongoing_requests=2 * most,
        max_queued_requests=ranker_args.max_queued_requests,
        backpressure_config=backpressure,
        ray_actor_options={"num_cpus": 0},
    )
    return ingress.bind(ranker_args.model_dump(), model)


def start_local_ray(**init_kwargs) -> None:
    """Start (or join) this machine's Ray for Serve: as every stage starts it (metrics collection off: otherwise the
    proxy and both replicas record metrics on every request that nothing on one machine scrapes), with longer
    readiness checks and the gRPC data plane unless the environment already says otherwise."""
    for name, seconds in SLOW_START_S.items():  # a busy machine needs longer than Serve's checks allow
        os.environ.setdefault(name, str(seconds))  # read by the Serve controller, which Ray starts from here
    for name, value in GRPC_TRANSPORT_ENV.items():
        os.environ.setdefault(name, value)
    ensure_ray(**init_kwargs)


def start_local(local: LocalServe) -> str:
    """Start Serve on this machine's Ray (started here when needed) with ``local``'s application; returns its URL."""
    start_local_ray()
    http = {"host": local.host, "port": local.port, "request_timeout_s": local.request_timeout_s}
    serve.start(http_options={k: v for k, v in http.items() if v is not None})
    serve.run(build_app(local.args), name=local.app_name, route_prefix=local.route_prefix)
    return local.url
