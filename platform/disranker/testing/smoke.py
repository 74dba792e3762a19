"""The smoke inputs: everything the ``jobs/configs/*_smoke.yaml`` runs read, built in seconds into one folder.

    disranker data build-smoke-inputs   # → outputs/smoke/{corpus,tiny_teacher,tiny_scorer,tiny_student,tiny_labels}

- ``corpus``: the tiny WordNet demo corpus (``build_demo_smoke.yaml``'s config);
- ``tiny_teacher``: a tiny random Llama causal LM, where teacher CPT and SFT start;
- ``tiny_scorer``: a tiny Llama scorer with a seeded head, for labeling without a trained SFT teacher;
- ``tiny_student``: a tiny random BERT cross-encoder, where distillation starts;
- ``tiny_labels``: the corpus's pool scored by ``tiny_scorer``, a labels table for distillation without a labeling
  run. Its scores are deterministic but carry no relevance signal: they exercise the labels contract and the
  teacher-scoring code path, nothing more.

Each is built only when its folder is missing, so the step is cheap to repeat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from disranker.data import io
from disranker.data.schemas import LABELS
from disranker.testing.tiny import build_tiny_scorer, build_tiny_student, build_tiny_teacher

SMOKE_DIR = "outputs/smoke"
SMOKE_CORPUS_SEED = 13  # build_demo_smoke.yaml's, so both build the same corpus in one folder


def build_smoke_inputs(out_dir: str | Path = SMOKE_DIR, wordnet_dir: str | None = None) -> dict[str, str]:
    """Build what is missing of the smoke inputs under ``out_dir``; returns each input's path by name."""
    # Imported here: the demo pulls bm25s → numba → llvmlite, whose wrappers break vLLM's kernel scan in actors.
    from disranker.data import demo

    out = Path(io.absolute(str(out_dir)))
    paths = {name: str(out / name) for name in ("corpus", "tiny_teacher", "tiny_scorer", "tiny_student")}
    demo.run(demo.DemoCorpusConfig(output_dir=paths["corpus"], size="tiny", seed=SMOKE_CORPUS_SEED,
                                   wordnet_dir=wordnet_dir))  # fmt: skip
    for name, build in (("tiny_teacher", build_tiny_teacher), ("tiny_scorer", build_tiny_scorer),
                        ("tiny_student", build_tiny_student)):  # fmt: skip
        if not (Path(paths[name]) / "config.json").is_file():
            build(paths[name])
    paths["tiny_labels"] = str(out / "tiny_labels")
    if not io.exists(paths["tiny_labels"]):
        write_teacher_labels(io.join(paths["corpus"], "pool.parquet"), paths["tiny_labels"], paths["tiny_scorer"])
    return paths


def teacher_overrides(inputs: dict[str, str]) -> list[str]:
    """Dotted overrides that point a teacher smoke config (CPT or SFT) at ``build_smoke_inputs``' paths."""
    judgments = f"{inputs['corpus']}/judgments"
    return [f"model.spec={inputs['tiny_teacher']}", f"data.clicks={inputs['corpus']}/clicks.parquet",
            f"data.train={judgments}/train.parquet", f"data.dev={judgments}/dev.parquet"]  # fmt: skip


def write_teacher_labels(pool_uri: str, labels_dir: str, scorer_dir: str, batch_size: int = 64) -> str:
    """Score a pool table with a teacher scorer folder in this process and write it as a one-shard labels table."""
    from disranker.models.loading import load_teacher_scorer, score_pairs_teacher
    from disranker.models.text import pair_texts

    pool = io.read_table(pool_uri)
    model, tokenizer = load_teacher_scorer(scorer_dir)
    scores = score_pairs_teacher(model, tokenizer, *pair_texts(pool), batch_size=batch_size)
    table = pool.select(["query_id", "query", "doc_id", "title", "summary"])
    table = table.append_column("teacher_score", pa.array(scores.astype(np.float32)))
    table = table.append_column("teacher", pa.array([f"tiny-random:{Path(scorer_dir).name}"] * len(table)))
    return io.write_table(table.cast(LABELS), io.join(labels_dir, "part-00000.parquet"))
