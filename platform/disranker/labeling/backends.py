"""Teacher scorer backends: callable classes that Ray Data runs on an actor pool (``map_batches(cls, concurrency=n)``).

Both read the same token ids (``disranker.models.text.encode_teacher``) and return the raw logit of the 1-logit head,
so their scores agree (tests/integration/test_labeling_vllm.py checks ≤ 1e-3 relative):

| backend        | engine                                   | batching                                      |
|----------------|------------------------------------------|-----------------------------------------------|
| ``transformers`` | ``*ForSequenceClassification`` in torch | length-sorted batches; each query's prompt run once |
| ``vllm``         | ``vllm.LLM(runner="pooling")``, classify | vLLM's scheduler; activation turned off        |

A call gets the flow columns of ``labeling.shards`` and returns them with ``teacher_score`` added. Rows already
rejected are passed through unscored. If the teacher raises on a call, its rows are scored one by one so that only
the rows it fails on are rejected (with the error as reason) and the job goes on; a non-finite score is rejected too.
A rerun scores the shards holding such rows again (the failure may have been transient); validation rejections are
final.

Test hook: a ``disranker.faults.FaultInjection`` with ``crash_scorer_once`` in the actor's environment (the pipeline
puts it there) makes the first actor to finish a call kill its own process before returning, as an out-of-memory kill
would. Ray restarts the actor (``scoring.max_restarts``) and retries the lost call on it (``scoring.max_task_retries``),
so the run must still end with every row exactly once.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from disranker.data import schemas
from disranker.faults import FaultInjection
from disranker.labeling.shards import SCORER_REASONS
from disranker.models import precision


class TeacherScorer(ABC):
    """The shared part of every backend: pick the rows to score, isolate failures, add ``teacher_score``."""

    def __init__(self, teacher: dict, scoring: dict, use_gpu: bool) -> None:
        self.teacher, self.scoring, self.use_gpu = teacher, scoring, use_gpu
        self.fault = FaultInjection.from_env()  # a test's, set by the pipeline; None in production

    @abstractmethod
    def score(self, queries: Sequence[str], titles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """Raw logits (float32) of the pairs, in input order."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        todo = np.flatnonzero(pc.is_null(batch["_reason"]).to_numpy(zero_copy_only=False))
        texts = [batch[name].take(todo).to_pylist() for name in ("query", "title", "summary")]
        scores, errors = self._score_or_isolate(*texts)
        teacher_score = np.full(batch.num_rows, np.nan, dtype=np.float32)
        teacher_score[todo] = scores
        reasons = batch["_reason"].to_pylist()
        records = batch["_record"].to_pylist()
        for position, error in errors.items():
            row = int(todo[position])
            reasons[row] = error
            records[row] = json.dumps({name: batch[name][row].as_py() for name in schemas.POOL.names})
        if self.fault is not None:
            self.fault.crash_scorer_if_first()
        return (
            batch.set_column(batch.schema.get_field_index("_reason"), "_reason", pa.array(reasons, pa.string()))
            .set_column(batch.schema.get_field_index("_record"), "_record", pa.array(records, pa.string()))
            .append_column("teacher_score", pa.array(teacher_score, pa.float32()))
        )

    def _score_or_isolate(self, queries, titles, summaries) -> tuple[np.ndarray, dict[int, str]]:
        """Scores of all rows, and position → reason for the rows that could not be scored."""
        try:
            scores = np.asarray(self.score(queries, titles, summaries), dtype=np.float32)
        except Exception:  # one bad row must not fail its neighbours: retry row by row to find it
            scores = np.full(len(queries), np.nan, dtype=np.float32)
            errors = {}
            for i in range(len(queries)):
                try:
                    scores[i] = self.score([queries[i]], [titles[i]], [summaries[i]])[0]
                except Exception as exc:
                    errors[i] = f"{SCORER_REASONS[0]}{type(exc).__name__}: {exc}"
        else:
            errors = {}
        for i in np.flatnonzero(~np.isfinite(scores)).tolist():
            errors.setdefault(i, f"{SCORER_REASONS[1]}{scores[i]} is not finite")
        return scores, errors


class TransformersScorer(TeacherScorer):
    """The teacher in torch: ``torch_threads`` intra-op threads, weights in the dtype ``scoring.precision`` names."""

    def __init__(self, teacher: dict, scoring: dict, use_gpu: bool) -> None:
        import torch

        from disranker.models.loading import load_teacher_scorer

        super().__init__(teacher, scoring, use_gpu)
        torch.set_num_threads(scoring["torch_threads"])
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_teacher_scorer(teacher["spec"])
        self.model.to(device=device, dtype=getattr(torch, scoring_dtype(scoring["precision"], device))).eval()

    def score(self, queries, titles, summaries) -> np.ndarray:
        from disranker.models.loading import score_pairs_teacher
        from disranker.models.prefix_scoring import score_pairs_teacher_shared_prefix

        scorer = score_pairs_teacher_shared_prefix if self.scoring["share_query_prompt"] else score_pairs_teacher
        return _score_with(scorer, self, queries, titles, summaries)


class StudentScorer(TeacherScorer):
    """A student cross-encoder on the same actors: the labeling machinery scoring a large table with a student
    (``disranker score --kind student``). ``teacher`` names the model folder, as for the other backends."""

    def __init__(self, teacher: dict, scoring: dict, use_gpu: bool) -> None:
        import torch

        from disranker.models.loading import load_student

        super().__init__(teacher, scoring, use_gpu)
        torch.set_num_threads(scoring["torch_threads"])
        self.model, self.tokenizer = load_student(teacher["spec"])
        self.model.to("cuda" if use_gpu and torch.cuda.is_available() else "cpu").eval()

    def score(self, queries, titles, summaries) -> np.ndarray:
        from disranker.models.loading import score_pairs_student

        return _score_with(score_pairs_student, self, queries, titles, summaries)


def _score_with(score_pairs, backend: TeacherScorer, queries, titles, summaries) -> np.ndarray:
    """A ``models.loading``-style scoring function run on ``backend``'s model at its batch size and length."""
    teacher = backend.teacher
    return score_pairs(backend.model, backend.tokenizer, queries, titles, summaries,
                       batch_size=teacher["batch_size"], max_length=teacher["max_length"])  # fmt: skip


class VllmScorer(TeacherScorer):
    """The teacher in vLLM's pooling runner, asked for raw logits (its classify task applies a sigmoid by default).

    The engine runs inside the actor's own process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): an actor is already a
    separate process, and a spawned engine would need the caller's ``if __name__ == "__main__"`` guard."""

    def __init__(self, teacher: dict, scoring: dict, use_gpu: bool) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from transformers import AutoTokenizer
        from vllm import LLM, PoolingParams

        from disranker.models.loading import resolve_model_dir

        super().__init__(teacher, scoring, use_gpu)
        folder = str(resolve_model_dir(teacher["spec"]))
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.llm = LLM(
            model=folder,
            runner="pooling",
            dtype=scoring_dtype(scoring["precision"], "cuda" if use_gpu else "cpu"),
            max_model_len=teacher["max_length"],
            enforce_eager=scoring["vllm_enforce_eager"],
            gpu_memory_utilization=scoring["vllm_memory_fraction"],
        )
        self.params = PoolingParams(use_activation=False)

    def score(self, queries, titles, summaries) -> np.ndarray:
        from vllm.inputs import TokensPrompt

        from disranker.models.text import encode_teacher

        ids = encode_teacher(self.tokenizer, queries, titles, summaries, max_length=self.teacher["max_length"])
        prompts = [TokensPrompt(prompt_token_ids=row) for row in ids["input_ids"]]
        outputs = self.llm.classify(prompts, pooling_params=self.params, use_tqdm=False)
        return np.array([output.outputs.probs[0] for output in outputs], dtype=np.float32)


def scoring_dtype(choice: str, device_type: str) -> str:
    """The torch / vLLM dtype name of ``scoring.precision`` on ``device_type``. The driver resolves ``auto`` before
    the actors start (``labeling.precision_check``); given ``auto`` on a CPU an actor takes fp32, the safe side."""
    if choice == "auto" and device_type == "cpu":
        return "float32"
    return {"fp32": "float32", "bf16": "bfloat16"}[precision.resolve(choice, device_type)]


BACKENDS: dict[str, type[TeacherScorer]] = {
    "transformers": TransformersScorer,
    "vllm": VllmScorer,
    "student": StudentScorer,
}
