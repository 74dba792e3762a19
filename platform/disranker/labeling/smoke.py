"""Tiny inputs for smoke runs and tests: the tiny demo pool and a tiny teacher with a seeded score head.

The labeling stage refuses a teacher without a trained score head (each actor would draw its own random head), so
the tiny causal LM of ``models.tiny`` is given a seeded head here and saved as a ``LlamaForSequenceClassification``
folder, which both backends load. Hidden size 128 with 2 heads of 64 dims: vLLM's CPU attention needs head_dim ≥ 32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from disranker.data import io

TINY_HEAD_SEED = 0


def build_tiny_scorer(out_dir: str | Path) -> str:
    """A tiny ``LlamaForSequenceClassification(num_labels=1)`` folder with a seeded score head; returns the folder."""
    import torch

    from disranker.models.loading import build_tiny_teacher, load_teacher_scorer

    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = build_tiny_teacher(tmp, head_dim_32=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_HEAD_SEED)
            model, tokenizer = load_teacher_scorer(lm_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def build_missing_inputs(pool: str, teacher_spec: str) -> None:
    """Build the tiny demo corpus when ``pool`` (…/pool.parquet) is absent, and a tiny teacher when its folder is."""
    if not io.exists(pool):
        # Imported here: the demo pulls bm25s → numba → llvmlite, whose wrappers break vLLM's kernel scan in actors.
        from disranker.data import demo

        folder, name = pool.rstrip("/").rsplit("/", 1)
        if name != "pool.parquet":
            raise FileNotFoundError(f"no pool at {pool}; only a missing <corpus>/pool.parquet is built for smoke runs")
        demo.run(demo.DemoCorpusConfig(output_dir=folder, size="tiny"))
    if not teacher_spec.startswith("packaged:") and not io.exists(io.join(teacher_spec, "config.json")):
        build_tiny_scorer(teacher_spec)
