"""Query groups for distillation: each step takes ``groups_per_batch`` groups of up to ``group_size`` docs of one query.

The training table reaches a worker as its share of a Ray Dataset with one row per query (``training.groups``), and
is streamed: no worker holds the table. Per epoch, each query's docs are shuffled (seeded by seed, epoch and the
query's key) and cut into groups of ``group_size`` (the last one padded, ``mask`` False); the groups pass through a
shuffle buffer seeded by (seed, epoch) (``training.streams``); each ``groups_per_batch`` of them make a step.
The stream a worker receives is the same in every attempt, so the order is a pure function of ``(seed, epoch)`` and a
resumed run skips exactly the groups it had already trained on. Every worker runs ``steps_per_epoch`` steps (DDP
needs equal steps): the groups past that on a worker with a larger share are left out of that epoch, a different few
each epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from disranker import lineage
from disranker.data import io
from disranker.labeling.output_claim import PLAN_FILE
from disranker.labeling.shards import LABELS_DIR
from disranker.models.text import encode_student
from disranker.training.streams import SHUFFLE_BUFFER, query_rows, shuffled


@dataclass
class Group:
    """Up to ``group_size`` documents of one query, trained on together."""

    id: str  # "<query_id>#<n>": the n-th group cut from the query this epoch
    query: str
    titles: list[str]
    summaries: list[str]
    targets: list[float]


@dataclass
class GroupBatch:
    """One step's input: the encoded valid pairs (row-major over ``mask``), the mask and the targets."""

    encoded: dict[str, torch.Tensor]  # input_ids etc. of the mask's True slots, in row-major order
    mask: torch.Tensor  # bool [groups, group_size]; False = padding
    targets: torch.Tensor  # float32 [groups, group_size]; 0 at padding
    ids: list[str]  # the groups' ids, in row order


class StreamedGroups:
    """A worker's share of the query rows (a Ray ``DataIterator``, or anything with ``iter_batches``) as batches."""

    def __init__(
        self,
        shard,
        target_column: str,
        group_size: int,
        groups_per_batch: int,
        steps_per_epoch: int,
        seed: int = 0,
        shuffle_buffer: int = SHUFFLE_BUFFER,
    ):
        self.shard, self.target_column = shard, target_column
        self.group_size, self.groups_per_batch, self.steps_per_epoch = group_size, groups_per_batch, steps_per_epoch
        self.seed, self.shuffle_buffer = seed, shuffle_buffer

    def groups(self, epoch: int) -> Iterator[Group]:
        """This epoch's groups in training order (see the module docstring)."""
        return shuffled(self._cut(epoch), np.random.default_rng([self.seed, epoch]), self.shuffle_buffer)

    def batches(self, epoch: int, tokenizer, max_length: int, start_step: int = 0) -> Iterator[GroupBatch]:
        """This worker's batches of ``epoch`` from step ``start_step`` on (a resumed epoch skips the done steps)."""
        groups = self.groups(epoch)
        for _ in itertools.islice(groups, start_step * self.groups_per_batch):
            pass
        for _ in range(start_step, self.steps_per_epoch):
            chunk = list(itertools.islice(groups, self.groups_per_batch))
            if len(chunk) < self.groups_per_batch:
                raise ValueError(
                    f"this worker's share ran out after fewer groups than {self.steps_per_epoch} steps need: the "
                    "training table changed while the run was going on"
                )
            yield make_batch(chunk, tokenizer, max_length, self.group_size)

    def _cut(self, epoch: int) -> Iterator[Group]:
        for query_id, key, query, titles, summaries, values in query_rows(self.shard, self.target_column):
            order = np.random.default_rng([self.seed, epoch, key]).permutation(len(titles))
            for n, start in enumerate(range(0, len(order), self.group_size)):
                docs = order[start : start + self.group_size]
                yield Group(
                    id=f"{query_id}#{n}",
                    query=query,
                    titles=[titles[d] for d in docs],
                    summaries=[summaries[d] for d in docs],
                    targets=[values[d] for d in docs],
                )


def make_batch(groups: list[Group], tokenizer, max_length: int, group_size: int) -> GroupBatch:
    mask = torch.zeros(len(groups), group_size, dtype=torch.bool)
    targets = torch.zeros(len(groups), group_size, dtype=torch.float32)
    for row, group in enumerate(groups):
        mask[row, : len(group.titles)] = True
        targets[row, : len(group.titles)] = torch.tensor(group.targets)
    encoded = encode_student(  # row-major: the order in which the student's scores are scattered back
        tokenizer,
        [group.query for group in groups for _ in group.titles],
        [title for group in groups for title in group.titles],
        [summary for group in groups for summary in group.summaries],
        max_length=max_length,
    )
    return GroupBatch(dict(encoded), mask, targets, [group.id for group in groups])


def training_table(uri: str, contract: str) -> str:
    """The table to group: a labeling output folder's ``labels/`` shards (never its ``rejected/``), else ``uri``."""
    labels_dir = io.join(uri, LABELS_DIR)
    return labels_dir if contract == "labels" and io.exists(labels_dir) else uri


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
    if lineage.stage_of(record) != "label" or metrics.get("labeled", 0) + metrics.get("rejected", 0) != metrics.get(
        "rows_in"
    ):
        raise ValueError(
            f"data.labels={uri}: the labeling run writing {folder} has not finished (no complete record in its "
            f"{lineage.FILENAME}); rerun the labeling stage on it (it resumes), then distil"
        )
