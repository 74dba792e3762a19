"""The demo corpus: reverse-dictionary search over WordNet 3.0 (see ``demo_relations`` for queries and grades).

``build_demo_corpus(DemoCorpusConfig(output_dir="d", size="small"))`` writes::

    d/clicks.parquet                     pool queries → their own synset (teacher CPT)
    d/judgments/{train,dev,test}.parquet graded candidates (teacher SFT, evaluation)
    d/pool.parquet                       unlabeled candidates (teacher labeling → distillation)
    d/stats.json                         queries, docs, pairs, label and source histograms per split
    d/disranker.json                     lineage

Splits partition the *query* synsets: no synset is the query of two splits, so no model trains on a test query or
on a test query's exact answer as a positive; the document collection is shared, as in MS MARCO. Each query gets
``candidates`` documents: itself (grade 4), related synsets drawn across grades 3/2/1, and negatives mixed from
four named sources (other senses of the same lemma, BM25 over titles, BM25 over summaries, random), so BM25 is not
judged only on negatives it chose. The build is deterministic for a (WordNet copy, size, seed).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

import bm25s
import numpy as np
import pyarrow as pa

from disranker import lineage
from disranker.config import ConfigError, to_dict
from disranker.data import io, schemas
from disranker.data.demo_relations import (
    Relation,
    children_count,
    document_summary,
    document_title,
    has_close_relation,
    informative_words,
    masked_query,
    relations,
)
from disranker.data.wordnet import Synset, find_wordnet_dir, read_synsets

SPLITS = ("train", "dev", "test", "pool")
NEGATIVE_SOURCES = ("other_sense", "bm25_title", "bm25_summary", "random")
MAX_OTHER_SENSES = 2  # more would make "same title, other meaning" dominate the negatives of common words
RELATED_SHARE = 0.45  # of the non-self candidates; the rest are negatives
MIN_QUERY_WORDS = 3
# Part of the lineage id: bump it when the builder's output changes, so a corpus built by older code is rebuilt.
BUILDER_VERSION = 2
NUMBA_MIN_QUERIES = 5000


@dataclass(frozen=True)
class DemoSize:
    train: int  # queries per split
    dev: int
    test: int
    pool: int | None  # None: every eligible query left over
    candidates: int  # documents per query, the query's own synset included


SIZES = {
    "tiny": DemoSize(train=60, dev=20, test=20, pool=100, candidates=8),  # tests: seconds
    "small": DemoSize(train=2000, dev=250, test=500, pool=3000, candidates=16),  # the demo
    "full": DemoSize(train=20000, dev=2000, test=5000, pool=None, candidates=20),  # benchmarks: pool ≥ 1 M pairs
}


@dataclass
class DemoCorpusConfig:
    output_dir: str | None = None  # local path or URI; inside the pipeline None means <pipeline output_dir>/corpus
    size: Literal["tiny", "small", "full"] = "small"
    seed: int = 13  # the same seed and WordNet copy give byte-identical tables
    wordnet_dir: str | None = None  # None: $WORDNET_DIR, /usr/share/wordnet, ~/.cache/disranker/wordnet
    candidates_per_query: int | None = None  # None: the size's default (8 / 16 / 20)
    bm25_depth: int = 30  # BM25 hits per query from which look-alike negatives are drawn

    def validate(self) -> None:
        if self.candidates_per_query is not None and self.candidates_per_query < 4:
            raise ConfigError("'candidates_per_query' must be ≥ 4 (self, a related doc and two negatives)")
        if self.bm25_depth < 1:
            raise ConfigError("'bm25_depth' must be ≥ 1")


def run(config: DemoCorpusConfig) -> str:
    """Build the corpus unless ``output_dir`` already holds one built from the same config and WordNet copy."""
    if not config.output_dir:
        raise ConfigError("'output_dir' is required: where the demo corpus is written")
    folder = find_wordnet_dir(config.wordnet_dir)
    fingerprint = f"{lineage.file_fingerprint([folder / 'data.noun', folder / 'data.verb'])}-v{BUILDER_VERSION}"
    expected = lineage.lineage_id("demo_corpus", to_dict(config), fingerprint=fingerprint)
    if lineage.is_complete(config.output_dir, expected):
        return config.output_dir
    started = time.perf_counter()
    stats = build_demo_corpus(config, read_synsets(folder))
    stats["source"]["wordnet_dir"] = str(folder)
    stats["build_seconds"] = round(time.perf_counter() - started, 1)
    io.write_json(stats, io.join(config.output_dir, "stats.json"))
    lineage.write_lineage(config.output_dir, "demo_corpus", to_dict(config), fingerprint=fingerprint, metrics=stats)
    return config.output_dir


def build_demo_corpus(config: DemoCorpusConfig, synsets: dict[str, Synset]) -> dict:
    """Write the tables of the module docstring from parsed ``synsets``; returns the stats."""
    size = SIZES[config.size]
    n_candidates = config.candidates_per_query or size.candidates
    rng = np.random.default_rng(config.seed)
    fanout = children_count(synsets)
    keys = sorted(synsets)
    queries = {k: masked_query(synsets[k]) for k in keys}
    eligible, dropped = _eligible_queries(keys, synsets, queries)
    split_keys = _split(eligible, size, rng)
    docs = {k: (document_title(synsets[k]), document_summary(synsets[k], synsets)) for k in keys}
    # The few synsets linked to nothing have an empty summary, which the contract forbids: they are no document.
    doc_keys = [k for k in keys if docs[k][1]]
    left_out = len(keys) - len(doc_keys)
    chosen = [k for split in SPLITS for k in split_keys[split]]
    look_alikes = _bm25_look_alikes(chosen, queries, docs, doc_keys, config.bm25_depth)
    by_lemma = defaultdict(list)
    for k in doc_keys:
        for lemma in synsets[k].lemmas:
            by_lemma[lemma.lower()].append(k)

    stats: dict = {
        "source": {
            "synsets": len(keys),
            "nouns": sum(s.pos == "n" for s in synsets.values()),
            "documents": len(doc_keys),
            "empty_documents_left_out": left_out,
        },
        "size": config.size,
        "seed": config.seed,
        "candidates_per_query": n_candidates,
        "eligible_queries": len(eligible),
        "dropped_queries": dropped,
        "splits": {},
    }
    for split in SPLITS:
        rows = []
        for key in split_keys[split]:
            related = {k: r for k, r in relations(key, synsets, fanout).items() if docs[k][1]}
            others = _unique(k for lemma in synsets[key].lemmas for k in by_lemma[lemma.lower()] if k != key)
            picked = _pick_candidates(key, related, others, look_alikes[key], doc_keys, n_candidates, rng)
            for index in rng.permutation(len(picked)):  # file order must not leak the grade
                doc, relation = picked[index]
                rows.append((key, doc, relation))
        table = _judgments_table(rows, queries, docs)
        stats["splits"][split] = _split_stats(table, [r[2].source for r in rows])
        if split == "pool":
            io.write_table(table.drop_columns(["label"]), io.join(config.output_dir, "pool.parquet"))
        else:
            io.write_table(table, io.join(config.output_dir, "judgments", f"{split}.parquet"))
    clicks = _judgments_table([(k, k, Relation(4, "self")) for k in split_keys["pool"]], queries, docs)
    io.write_table(clicks.drop_columns(["label"]), io.join(config.output_dir, "clicks.parquet"))
    stats["splits"]["clicks"] = {"queries": clicks.num_rows, "docs": clicks.num_rows, "pairs": clicks.num_rows}
    return stats


def query_id(key: str) -> str:
    """Opaque query ids: a readable one ("q-dog%1:05:00") would hand a model the answer."""
    return "q" + hashlib.sha1(key.encode()).hexdigest()[:12]


def _eligible_queries(keys, synsets, queries) -> tuple[list[str], dict[str, int]]:
    definitions = Counter(synsets[k].definition.lower() for k in keys)
    dropped = Counter()
    eligible = []
    for k in keys:
        if definitions[synsets[k].definition.lower()] > 1:
            dropped["duplicate_gloss"] += 1  # two synsets, one query: the "right" answer would be a coin toss
        elif informative_words(queries[k]) < MIN_QUERY_WORDS:
            dropped["too_short_after_masking"] += 1
        elif not has_close_relation(synsets[k]):
            dropped["no_close_relation"] += 1
        else:
            eligible.append(k)
    return eligible, dict(sorted(dropped.items()))


def _split(eligible: list[str], size: DemoSize, rng: np.random.Generator) -> dict[str, list[str]]:
    needed = size.train + size.dev + size.test + (size.pool or 0)
    if needed > len(eligible):
        raise ValueError(f"the size asks for {needed} queries but WordNet has {len(eligible)} eligible ones")
    order = [eligible[i] for i in rng.permutation(len(eligible))]
    bounds = np.cumsum([0, size.test, size.dev, size.train])
    pool_end = len(order) if size.pool is None else bounds[-1] + size.pool
    return {
        "test": order[bounds[0] : bounds[1]],
        "dev": order[bounds[1] : bounds[2]],
        "train": order[bounds[2] : bounds[3]],
        "pool": order[bounds[3] : pool_end],
    }


def _bm25_look_alikes(chosen, queries, docs, keys, depth) -> dict[str, dict[str, list[str]]]:
    """Top-``depth`` documents per query by BM25 over titles and, separately, over summaries (bm25s library)."""
    found: dict[str, dict[str, list[str]]] = {k: {} for k in chosen}
    query_tokens = bm25s.tokenize([queries[k] for k in chosen], stopwords="en", show_progress=False)
    # numba's compile takes seconds but then retrieves ~40× faster: worth it only for many queries (the full size).
    backend = "numba" if len(chosen) >= NUMBA_MIN_QUERIES else "numpy"
    tokens = bm25s.tokenization.convert_tokenized_to_string_list(query_tokens)
    for source, field in (("bm25_title", 0), ("bm25_summary", 1)):
        index = bm25s.BM25(backend=backend)
        index.index(
            bm25s.tokenize([docs[k][field] for k in keys], stopwords="en", show_progress=False), show_progress=False
        )
        hits, _ = index.retrieve(
            tokens,
            k=min(depth, len(keys)),
            show_progress=False,
            n_threads=os.cpu_count() or 1,
            backend_selection=backend,
        )
        for key, row in zip(chosen, hits, strict=True):
            found[key][source] = [keys[i] for i in row]
    return found


def _pick_candidates(key, related, other_senses, look_alikes, keys, n, rng) -> list[tuple[str, Relation]]:
    picked: dict[str, Relation] = {key: Relation(4, "self")}
    by_grade = {g: sorted(k for k, r in related.items() if r.grade == g) for g in (3, 2, 1)}
    pools = {g: [ks[i] for i in rng.permutation(len(ks))] for g, ks in by_grade.items()}
    _round_robin(picked, {g: [(k, related[k]) for k in ks] for g, ks in pools.items()}, round((n - 1) * RELATED_SHARE))
    negatives = {
        source: [(k, Relation(0, source)) for k in _shuffled(look_alikes[source], rng) if k not in related]
        for source in ("bm25_title", "bm25_summary")
    }
    negatives["other_sense"] = [(k, Relation(0, "other_sense")) for k in other_senses if k not in related]
    negatives["other_sense"] = negatives["other_sense"][:MAX_OTHER_SENSES]
    _round_robin(picked, negatives, n - len(picked) - (n - 1) // 4)  # leave a quarter of the slots for random
    while len(picked) < n:
        candidate = keys[rng.integers(len(keys))]
        if candidate not in picked and candidate not in related:
            picked[candidate] = Relation(0, "random")
    return list(picked.items())


def _round_robin(picked: dict, sources: dict, budget: int) -> None:
    """Take one item per source in turn until ``budget`` items were added or every source is spent."""
    queues = {name: list(items) for name, items in sources.items()}
    target = len(picked) + max(budget, 0)
    while len(picked) < target and any(queues.values()):
        for queue in queues.values():
            while queue and queue[0][0] in picked:
                queue.pop(0)
            if queue and len(picked) < target:
                doc, relation = queue.pop(0)
                picked[doc] = relation


def _judgments_table(rows, queries, docs) -> pa.Table:
    columns = {
        "query_id": [query_id(q) for q, _, _ in rows],
        "query": [queries[q] for q, _, _ in rows],
        "doc_id": [d for _, d, _ in rows],
        "title": [docs[d][0] for _, d, _ in rows],
        "summary": [docs[d][1] for _, d, _ in rows],
        "label": [r.grade for _, _, r in rows],
    }
    return pa.table(columns, schema=schemas.JUDGMENTS)


def _split_stats(table: pa.Table, sources: list[str]) -> dict:
    labels = table.column("label").to_pylist()
    by_source: dict[str, Counter] = defaultdict(Counter)
    for source, label in zip(sources, labels, strict=True):
        by_source[source][label] += 1
    return {
        "queries": len(set(table.column("query_id").to_pylist())),
        "docs": len(set(table.column("doc_id").to_pylist())),
        "pairs": table.num_rows,
        "labels": {str(g): labels.count(g) for g in range(schemas.MAX_LABEL + 1)},
        "sources": {s: {str(g): c[g] for g in sorted(c)} for s, c in sorted(by_source.items())},
    }


def _shuffled(items: list[str], rng: np.random.Generator) -> list[str]:
    """Look-alikes drawn anywhere in BM25's top ``depth``, not only its top few: otherwise the BM25 baseline is judged
    on exactly the negatives it ranks highest and falls below a random order."""
    return [items[i] for i in rng.permutation(len(items))]


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
