"""Query groups for distillation: each step takes ``groups_per_batch`` groups of up to ``group_size`` docs of one query.

The training table (labels, or judgments in ``labels_only`` mode) is validated against its contract and kept as Arrow
columns; only integer row indices are shuffled and grouped, and a batch's texts are taken and tokenised when the
batch is built. The order is a pure function of ``(seed, epoch)``, so every rank derives the same global order with
no communication, takes its own slice, and a resumed run skips exactly the batches it had already trained on.

Per epoch: docs are shuffled inside each query and cut into chunks of ``group_size`` (the last chunk of a query is
padded, ``mask`` False); the chunks are shuffled; step ``b`` of rank ``r`` takes chunks
``[(b·W + r)·G, (b·W + r + 1)·G)`` for ``W`` ranks and ``G`` groups per batch. The remainder that does not fill a
step on every rank is left out of that epoch (a different remainder each epoch): DDP needs equal steps per rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from disranker import lineage
from disranker.data import io
from disranker.data.validate import validate_table
from disranker.labeling.output_claim import PLAN_FILE
from disranker.labeling.shards import LABELS_DIR
from disranker.models.text import encode_student


@dataclass
class GroupBatch:
    """One step's input: the encoded valid pairs (row-major over ``mask``), the mask and the targets."""

    encoded: dict[str, torch.Tensor]  # input_ids etc. of the mask's True slots, in row-major order
    mask: torch.Tensor  # bool [groups, group_size]; False = padding
    targets: torch.Tensor  # float32 [groups, group_size]; 0 at padding


class QueryGroups:
    """A training table as shuffled query groups; see the module docstring for the order."""

    def __init__(self, table: pa.Table, target_column: str, group_size: int, groups_per_batch: int, seed: int = 0):
        if table.num_rows == 0:
            raise ValueError("the training table has no valid rows")
        self.texts = table.select(["query", "title", "summary"]).combine_chunks()
        self.targets = table[target_column].to_numpy().astype(np.float32)
        _, self.query_codes = np.unique(table["query_id"].to_numpy(zero_copy_only=False), return_inverse=True)
        self.group_size = group_size
        self.groups_per_batch = groups_per_batch
        self.seed = seed

    @classmethod
    def from_uri(cls, uri: str, contract: str, target_column: str, max_queries: int | None = None, **kwargs):
        """Read ``uri`` and keep the rows that meet ``contract`` (see :func:`read_training_table`)."""
        table = read_training_table(uri, contract, max_queries)
        return cls(table, target_column, **kwargs)

    @property
    def num_rows(self) -> int:
        return len(self.targets)

    def epoch_groups(self, epoch: int) -> np.ndarray:
        """Row indices [n_groups, group_size] of this epoch's groups in training order, -1 at padding."""
        rng = np.random.default_rng([self.seed, epoch])
        shuffled = rng.permutation(self.num_rows)
        rows = shuffled[np.argsort(self.query_codes[shuffled], kind="stable")]  # grouped by query, random inside
        codes = self.query_codes[rows]
        query_start = np.searchsorted(codes, codes, side="left")
        chunk = (np.arange(len(rows)) - query_start) // self.group_size
        slot = (np.arange(len(rows)) - query_start) % self.group_size
        new_group = np.ones(len(rows), dtype=bool)
        new_group[1:] = (codes[1:] != codes[:-1]) | (chunk[1:] != chunk[:-1])
        group_id = np.cumsum(new_group) - 1
        groups = np.full((group_id[-1] + 1, self.group_size), -1, dtype=np.int64)
        groups[group_id, slot] = rows
        return groups[rng.permutation(len(groups))]

    def steps_per_epoch(self, world_size: int) -> int:
        n_groups = len(self.epoch_groups(0))  # the group count does not depend on the epoch
        steps = n_groups // (world_size * self.groups_per_batch)
        if steps == 0:
            raise ValueError(
                f"{n_groups} query groups cannot fill one step of {self.groups_per_batch} groups on {world_size} "
                "workers: lower training.groups_per_batch or give more data"
            )
        return steps

    def batches(
        self, epoch: int, rank: int, world_size: int, tokenizer, max_length: int, start_step: int = 0
    ) -> Iterator[GroupBatch]:
        """This rank's batches of ``epoch`` from step ``start_step`` on (a resumed epoch skips the done steps)."""
        groups = self.epoch_groups(epoch)
        for step in range(start_step, self.steps_per_epoch(world_size)):
            first = (step * world_size + rank) * self.groups_per_batch
            yield self.make_batch(groups[first : first + self.groups_per_batch], tokenizer, max_length)

    def make_batch(self, groups: np.ndarray, tokenizer, max_length: int) -> GroupBatch:
        mask = groups >= 0
        rows = groups[mask]  # row-major: the order in which the student's scores are scattered back
        texts = self.texts.take(pa.array(rows))
        encoded = encode_student(
            tokenizer,
            texts["query"].to_pylist(),
            texts["title"].to_pylist(),
            texts["summary"].to_pylist(),
            max_length=max_length,
        )
        targets = np.zeros(groups.shape, dtype=np.float32)
        targets[mask] = self.targets[rows]
        return GroupBatch(dict(encoded), torch.from_numpy(mask), torch.from_numpy(targets))


def check_labeling_finished(uri: str) -> None:
    """Refuse the output folder of a labeling run that has not finished (no record, or rows that do not add up): its
    shards would be a part of the pool. A labels table written some other way is taken as it is."""
    parent = uri.rstrip("/").rsplit("/", 1)[0]
    candidates = [uri, parent, parent.rsplit("/", 1)[0]]  # the folder, labels/ in it, or a shard in labels/
    folder = next(
        (f for f in candidates if io.exists(io.join(f, LABELS_DIR)) and io.exists(io.join(f, PLAN_FILE))), None
    )
    if folder is None:
        return
    record = lineage.read_lineage(folder) or {}
    metrics = record.get("metrics", {})
    if record.get("stage") != "labeling" or metrics.get("labeled", 0) + metrics.get("rejected", 0) != metrics.get(
        "rows_in"
    ):
        raise ValueError(
            f"data.labels={uri}: the labeling run writing {folder} has not finished (no complete record in its "
            f"{lineage.FILENAME}); rerun the labeling stage on it (it resumes), then distil"
        )


def read_training_table(uri: str, contract: str, max_queries: int | None = None) -> pa.Table:
    """The rows of ``uri`` that keep ``contract`` (labels or judgments), optionally only its first ``max_queries``.

    A labeling output folder holds ``labels/`` and ``rejected/`` shards side by side: only ``labels/`` is read."""
    labels_dir = io.join(uri, LABELS_DIR)
    if contract == "labels" and io.exists(labels_dir):
        uri = labels_dir
    table = validate_table(io.read_table(uri), contract).valid
    if max_queries is not None:
        query_ids = table["query_id"].to_numpy(zero_copy_only=False)
        _, first_rows = np.unique(query_ids, return_index=True)
        kept = query_ids[np.sort(first_rows)[:max_queries]]
        table = table.filter(pc.is_in(table["query_id"], pa.array(kept)))
    return table
