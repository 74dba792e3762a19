"""Training examples for the teacher: CPT sequences from clicks and SFT query groups from judgments.

Both reach each worker as its share of a group table (one row per query, ``training.groups``), streamed through Ray
Data: no worker holds the table. CPT: every click once per epoch (``StreamedClicks``), ``models.text.encode_cpt``
(prompt labels are -100, so only the clicked document's title + summary + EOS carry loss), length-bucketed. SFT
(``StreamedLabelGroups``): one group per query and epoch, ``group_size`` judged docs drawn across the query's labels
so every group holds ordered pairs; queries whose docs all share one label teach a rank loss nothing and are left out
(``rankable_queries`` counts the rest).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from disranker.data import io
from disranker.data.validate import validate_table
from disranker.models.packing import pack_groups
from disranker.models.text import cpt_prompt, encode_cpt, encode_teacher
from disranker.teacher.config import TeacherConfig
from disranker.training.grouping import publish_rejected
from disranker.training.groups import Groups, kept_keys
from disranker.training.streams import SHUFFLE_BUFFER, query_rows, shuffled


def read_valid(uri: str, contract: str) -> pa.Table:
    """The rows of ``uri`` that keep ``contract`` (the driver has checked there are some: ``write_rejections``)."""
    return validate_table(io.read_table(uri), contract).valid


def write_rejections(config: TeacherConfig, groups: Groups) -> dict[str, dict[str, int]]:
    """Each input's row counts for the stage's record and its bad rows (with reasons) in
    ``<output_dir>/rejected/<name>.parquet``: the training table's from the grouping step, which validated it piece by
    piece, and SFT's dev table validated here (every worker reads it whole to score it, ``read_valid``)."""
    name = "clicks" if config.stage == "cpt" else "train"
    publish_rejected(groups, io.join(config.output_dir, "rejected", f"{name}.parquet"))
    counts = {name: groups.inputs}
    if config.stage == "sft":
        checked = validate_table(io.read_table(config.data.dev), "judgments")
        if checked.valid.num_rows == 0:
            raise ValueError(f"data.dev={config.data.dev}: no row keeps the judgments contract, nothing to score")
        path = io.join(config.output_dir, "rejected", "dev.parquet")
        if checked.rejected.num_rows:
            io.write_table(checked.rejected, path)
        elif io.exists(path):  # an earlier run's bad rows, no longer in the input
            fs, local = io.resolve(path)
            fs.delete_file(local)
        counts["dev"] = checked.counts
    return counts


BUCKET_BATCHES = 50  # CPT: examples are sorted by length within windows of this many batches


def length_bucketed(examples: list[dict], batch_size: int, rng: np.random.Generator) -> list[dict]:
    """``examples`` (already shuffled) reordered so each run of ``batch_size`` has similar lengths (less padding):
    sorted by length inside windows of ``BUCKET_BATCHES`` batches, then the full batches shuffled with ``rng``; a short
    last batch stays last, so cutting the result every ``batch_size`` examples gives back exactly these batches."""
    window = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(examples), window):
        part = sorted(examples[start : start + window], key=lambda e: len(e["input_ids"]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    full = [batches[b] for b in rng.permutation(len(batches) - (len(batches[-1]) < batch_size if batches else 0))]
    return [example for batch in full + batches[len(full) :] for example in batch]


class StreamedClicks:
    """A worker's share of the click table grouped by query (``training.groups``, no target) as this epoch's CPT
    examples in micro-batch order: each of the first ``n_clicks`` clicks of the stream once, through the shuffle buffer
    seeded by (seed, epoch), then ``length_bucketed`` window by window. The same order in every attempt."""

    def __init__(self, shard, tokenizer, max_length: int, batch_size: int, seed: int, n_clicks: int):
        self.shard, self.tokenizer, self.max_length = shard, tokenizer, max_length
        self.batch_size, self.seed, self.n_clicks = batch_size, seed, n_clicks

    def examples(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, epoch])
        clicks = itertools.islice(shuffled(self._clicks(), rng), self.n_clicks)
        while window := list(itertools.islice(clicks, self.batch_size * BUCKET_BATCHES)):
            encoded = [encode_cpt(self.tokenizer, *click, max_length=self.max_length) for click in window]
            yield from length_bucketed(encoded, self.batch_size, rng)

    def _clicks(self) -> Iterator[tuple[str, str, str]]:
        for _, _, query, titles, summaries in query_rows(self.shard, None):
            yield from ((query, title, summary) for title, summary in zip(titles, summaries, strict=True))


def collate_cpt(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: pad ids, attention 0, labels -100 (padding carries no loss)."""
    width = max(len(e["input_ids"]) for e in examples)

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([e[key] + [fill] * (width - len(e[key])) for e in examples], dtype=torch.long)

    return {
        "input_ids": padded("input_ids", pad_token_id),
        "attention_mask": padded("attention_mask", 0),
        "labels": padded("labels", -100),
    }


@dataclass
class QueryGroup:
    query: str
    titles: list[str]
    summaries: list[str]
    labels: list[int]


@dataclass
class GroupStats:
    queries: int  # distinct queries in the table
    groups: int  # queries with at least two different labels (the ones a rank loss can learn from)


def label_group(
    query: str, titles: list[str], summaries: list[str], labels: list, group_size: int, rng: np.random.Generator
) -> QueryGroup | None:
    """Up to ``group_size`` of one query's docs taken round-robin over its labels, highest label first, each label's
    docs in an order drawn from ``rng``; None when all docs share one label (no ordered pair to learn from)."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for doc, label in enumerate(labels):
        by_label[int(label)].append(doc)
    if len(by_label) < 2:
        return None
    buckets = [[docs[i] for i in rng.permutation(len(docs))] for _, docs in sorted(by_label.items(), reverse=True)]
    picked: list[int] = []
    while len(picked) < min(group_size, len(labels)):
        for bucket in buckets:
            if bucket and len(picked) < group_size:
                picked.append(bucket.pop())
    return QueryGroup(
        query=query,
        titles=[titles[d] for d in picked],
        summaries=[summaries[d] for d in picked],
        labels=[int(labels[d]) for d in picked],
    )


def query_groups(
    judgments: pa.Table, group_size: int, seed: int, max_queries: int | None = None
) -> tuple[list[QueryGroup], GroupStats]:
    """One ``label_group`` per query of an in-memory table (in first-seen order), all drawn from one ``seed``: the
    benchmarks' fixed batches. Training streams its groups instead (``StreamedLabelGroups``)."""
    rng = np.random.default_rng(seed)
    by_query: dict[str, list[dict]] = defaultdict(list)
    for row in judgments.select(["query_id", "query", "title", "summary", "label"]).to_pylist():
        by_query[row["query_id"]].append(row)
    query_ids = list(by_query)[:max_queries] if max_queries else list(by_query)
    groups = []
    for query_id in query_ids:
        rows = by_query[query_id]
        columns = ([r[name] for r in rows] for name in ("title", "summary", "label"))
        group = label_group(rows[0]["query"], *columns, group_size=group_size, rng=rng)
        if group is not None:
            groups.append(group)
    return groups, GroupStats(queries=len(query_ids), groups=len(groups))


class StreamedLabelGroups:
    """A worker's share of the SFT group table (``training.groups``, target ``label``) as this epoch's query groups:
    one ``label_group`` per query with two labels or more, drawn from (seed, epoch, query key) so each epoch brings
    other negatives, through a shuffle buffer seeded by (seed, epoch): the same order in every attempt."""

    def __init__(self, shard, group_size: int, seed: int, shuffle_buffer: int = SHUFFLE_BUFFER):
        self.shard, self.group_size, self.seed, self.shuffle_buffer = shard, group_size, seed, shuffle_buffer

    def groups(self, epoch: int) -> Iterator[QueryGroup]:
        return shuffled(self._drawn(epoch), np.random.default_rng([self.seed, epoch]), self.shuffle_buffer)

    def _drawn(self, epoch: int) -> Iterator[QueryGroup]:
        for _, key, query, titles, summaries, labels in query_rows(self.shard, "label"):
            rng = np.random.default_rng([self.seed, epoch, key])
            group = label_group(query, titles, summaries, labels, self.group_size, rng)
            if group is not None:
                yield group


def rankable_queries(groups: Groups, world_size: int, key_limits: list[int]) -> list[int]:
    """Per worker (``key % world_size``), the queries up to its key limit with at least two labels: its SFT groups
    per epoch. Reads the table's keys and labels only."""
    table = io.read_table(groups.uri, columns=["key", "label"])
    keys, labels = table["key"].to_numpy(), table["label"].combine_chunks()
    values = labels.flatten().to_numpy(zero_copy_only=False)
    starts = labels.offsets.to_numpy()[:-1] - labels.offsets[0].as_py()  # every group has a document
    rankable = np.minimum.reduceat(values, starts) != np.maximum.reduceat(values, starts)
    kept = rankable & kept_keys(keys, world_size, key_limits)
    return [int(kept[keys % world_size == rank].sum()) for rank in range(world_size)]


def collate_groups(groups: list[QueryGroup], tokenizer, max_length: int, group_size: int) -> dict[str, torch.Tensor]:
    """Teacher texts of every doc, flattened and right-padded, plus ``[n_groups, group_size]`` labels and mask.

    ``slots`` maps each text to its position in the flattened ``[n_groups * group_size]`` score grid; slots of a
    group with fewer than ``group_size`` docs stay masked out."""
    encoded = _encode_groups(groups, tokenizer, max_length)
    flat = [ids for group in encoded for ids in group]
    padded = tokenizer.pad({"input_ids": flat}, padding=True, padding_side="right", return_tensors="pt")
    return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"], **_grid(groups, group_size)}


def collate_groups_packed(
    groups: list[QueryGroup], tokenizer, max_length: int, group_size: int, row_tokens: int
) -> dict[str, torch.Tensor]:
    """The same documents, slots, labels and mask as ``collate_groups``, each query's prompt once per packed row
    (``models.packing``): ``PackedRows.as_batch``'s tensors (``PackedRows.from_batch`` reads them back)."""
    prompts = tokenizer([cpt_prompt(group.query) for group in groups], add_special_tokens=True)["input_ids"]
    packed = pack_groups(prompts, _encode_groups(groups, tokenizer, max_length), row_tokens, tokenizer.pad_token_id)
    return {**packed.as_batch(), **_grid(groups, group_size)}


def _encode_groups(groups: list[QueryGroup], tokenizer, max_length: int) -> list[list[list[int]]]:
    """Each group's teacher-scoring token ids (``encode_teacher``), one list per group, in document order."""
    queries = [group.query for group in groups for _ in group.labels]
    titles = [title for group in groups for title in group.titles]
    summaries = [summary for group in groups for summary in group.summaries]
    flat = encode_teacher(tokenizer, queries, titles, summaries, max_length=max_length)["input_ids"]
    out, start = [], 0
    for group in groups:
        out.append(flat[start : start + len(group.labels)])
        start += len(group.labels)
    return out


def _grid(groups: list[QueryGroup], group_size: int) -> dict[str, torch.Tensor]:
    """``slots`` (each document's cell in the flattened score grid), ``labels`` and ``mask`` [n_groups, group_size]."""
    slots = []
    labels = torch.zeros(len(groups), group_size, dtype=torch.long)
    mask = torch.zeros(len(groups), group_size, dtype=torch.bool)
    for g, group in enumerate(groups):
        n = len(group.labels)
        slots += [g * group_size + i for i in range(n)]
        labels[g, :n] = torch.tensor(group.labels)
        mask[g, :n] = True
    return {"slots": torch.tensor(slots, dtype=torch.long), "labels": labels, "mask": mask}


def scatter_scores(flat_scores: torch.Tensor, slots: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Place one score per text into its ``[n_groups, group_size]`` slot (masked slots hold 0)."""
    grid = flat_scores.new_zeros(shape[0] * shape[1])
    return grid.index_copy(0, slots, flat_scores).view(shape)
