"""The model replica behind the ranking endpoint: a Ray Serve deployment that batches (query, document) pairs.

The HTTP side (``serving.app``) is a separate deployment that calls this one through a handle, so that a request
whose model replica dies in flight is retried on a live replica instead of reaching the client as Serve's 500.
Every request goes through one ``@serve.batch`` queue (as chunks of at most ``max_batch_size`` documents), so
concurrent requests share model calls of up to that many pairs; its size and wait come from ``user_config`` and
change on running replicas through ``reconfigure()``. The runtime says how many batches may score at once
(``PairScorer.concurrent_batches``: several for OpenVINO, whose streams take the next batch's forwards while one
batch's last forward runs). Replicas scale between ``autoscaling.min_replicas`` and
``max_replicas`` on requests in flight.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import numpy as np
from ray import serve

from disranker.serving.config import BatchingArgs, RankerArgs
from disranker.serving.pair_encoding import Pair
from disranker.serving.runtime import load_scorer
from disranker.serving.schemas import RequestError

HEALTH_PAIR = ("health check", "", "a document the replica scores to prove its model still answers")


class ModelFailure(RuntimeError):
    """Every pair of a batch failed, alone too: the replica's model, not a request, is at fault (a 503)."""


@dataclass(frozen=True)
class Scored:
    """One request's answer from a replica. A value, not an exception: the ingress tells a refused request, a failing
    model and a dead replica apart without unwrapping Ray's error types (and a value pickles whatever it holds)."""

    model: str  # the scorer's id: the student's stage and lineage id, else its spec
    max_length: int  # tokens per pair the model reads
    scores: list[float] = field(default_factory=list)  # NaN where the model could not score that document
    truncated: list[bool] = field(default_factory=list)  # whether the model had to cut each document
    refused: tuple[int, str, str] | None = None  # the request's own fault (status, field, message), e.g. a long query
    model_failure: str | None = None  # why every pair of the batch failed: the model, not the request


@serve.deployment
class Ranker:
    def __init__(self, args: dict):
        self.args = RankerArgs.model_validate(args)
        self.scorer = load_scorer(self.args)
        # most_batches_at_once: the most batches that were scoring at the same moment (at most concurrent_batches).
        self.counters = {"requests": 0, "batches": 0, "pairs": 0, "most_batches_at_once": 0}
        self.batches_scoring = 0
        self.max_batch_size = self.args.batching.max_batch_size  # reconfigure() sets it again from user_config
        # Built here, not as a decorator, because how many batches may score at once is the runtime's to say
        # (``PairScorer.concurrent_batches``). Entries are chunks of one request's documents; max_batch_size counts
        # their pairs (batch_size_fn), so a model call holds at most that many pairs whether from one request or more.
        self._score_chunks = serve.batch(
            max_batch_size=self.max_batch_size,
            batch_wait_timeout_s=self.args.batching.batch_wait_timeout_s,
            max_concurrent_batches=self.scorer.concurrent_batches,
            batch_size_fn=lambda chunks: sum(len(chunk) for chunk in chunks),
        )(self._score_batch)

    async def check_health(self) -> None:
        """Serve calls this every ``health_check_period_s``: a replica whose model no longer scores is replaced."""
        score = await asyncio.to_thread(self._health_score)
        if not math.isfinite(score):
            raise RuntimeError(f"the model scored the health-check pair {score}")

    def _health_score(self) -> float:
        """The health-check pair's score, encoded and padded as requests are."""
        query, title, summary = HEALTH_PAIR
        pairs = self.scorer.encoder.encode(query, [title], [summary]).pairs
        return float(self.scorer.score_encoded(self.scorer.encoder.pad(pairs))[0])

    def reconfigure(self, user_config: dict) -> None:
        """Apply new batching knobs (``serve deploy`` with a changed ``user_config``) without a restart."""
        batching = BatchingArgs.model_validate(user_config)
        self.max_batch_size = batching.max_batch_size
        self._score_chunks.set_max_batch_size(batching.max_batch_size)
        self._score_chunks.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)

    async def score(self, query: str, titles: list[str], summaries: list[str]) -> Scored:
        """Every document's score through the shared batch queue, and whether the model had to cut it."""
        model = {"model": self.scorer.model_id, "max_length": self.scorer.max_length}
        try:  # tokenised here, in the request's thread, not on the batch's path (serving.pair_encoding)
            encoded = await asyncio.to_thread(self.scorer.encoder.encode, query, titles, summaries)
        except RequestError as refused:
            return Scored(**model, refused=(refused.status, refused.field, refused.message))
        self.counters["requests"] += 1
        # One queue entry per chunk of at most max_batch_size documents, not one per document: a 50-document request
        # is one entry (50 awaited futures cost more than the batching they bought).
        size, pairs = self.max_batch_size, encoded.pairs
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        try:
            scored = await asyncio.gather(*(self._score_chunks(chunk) for chunk in chunks))
        except ModelFailure as exc:
            return Scored(**model, truncated=encoded.truncated, model_failure=str(exc))
        return Scored(**model, scores=[score for chunk in scored for score in chunk], truncated=encoded.truncated)

    def info(self) -> dict:
        """What /info reports about the model and this replica."""
        return {
            "model": self.scorer.model_id,
            "lineage": self.scorer.lineage,
            # torch or onnx-int8, and for onnx-int8 the agreement check against torch (numbers, source, reason).
            "runtime": self.scorer.runtime,
            "max_length": self.scorer.max_length,
            "batching": {
                "max_batch_size": self._score_chunks._get_max_batch_size(),
                "batch_wait_timeout_s": self._score_chunks._get_batch_wait_timeout_s(),
                "max_concurrent_batches": self.scorer.concurrent_batches,
            },
            "replica": serve.get_replica_context().replica_id.unique_id,
            "counters": dict(self.counters),  # this replica's, since it started
        }

    async def _score_batch(self, chunks: list[list[Pair]]) -> list[list[float]]:
        """One batch of the queue (``self._score_chunks``): every chunk's scores, in its documents' order."""
        pairs = [pair for chunk in chunks for pair in chunk]
        self.counters["batches"] += 1
        self.counters["pairs"] += len(pairs)
        self.batches_scoring += 1
        self.counters["most_batches_at_once"] = max(self.counters["most_batches_at_once"], self.batches_scoring)
        try:  # in a thread, so the event loop keeps accepting requests (they queue up for the next batch) meanwhile
            scores = await asyncio.to_thread(self._score_isolated, pairs)
        finally:
            self.batches_scoring -= 1
        ends = np.cumsum([len(chunk) for chunk in chunks])
        return [scores[end - len(chunk) : end] for end, chunk in zip(ends, chunks, strict=True)]

    def _score_isolated(self, pairs: list[Pair]) -> list[float]:
        """The batch's scores; if the batch fails, pair by pair, NaN where a pair fails, so that one request's
        document cannot fail the other requests sharing its batch."""
        try:
            return self.scorer.score_encoded(self.scorer.encoder.pad(pairs)).tolist()
        except Exception as batch_error:
            scores = []
            for pair in pairs:
                try:
                    scores.append(float(self.scorer.score_encoded(self.scorer.encoder.pad([pair]))[0]))
                except Exception:
                    scores.append(math.nan)
            if not any(math.isfinite(score) for score in scores):  # not one input's doing: the model is failing
                raise ModelFailure(f"{type(batch_error).__name__}: {batch_error}") from batch_error
            return scores
