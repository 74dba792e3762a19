"""The driver's precision decision: bf16 on a CPU only after the teacher's bf16 scores rank like its fp32 ones."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker.config import load_config
from disranker.labeling import LabelConfig, precision_check
from disranker.labeling.shards import plan_shards
from disranker.testing.tiny import build_tiny_teacher


@pytest.fixture(scope="module")
def pool_and_teacher(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("labeling")
    rows = [
        {"query_id": f"q{q}", "query": f"the {w} query", "doc_id": f"d{d}", "title": w, "summary": f"a {w} doc {d}"}
        for q, w in enumerate(["dog", "cat", "tree"])
        for d in range(6)
    ]
    rows.append({"query_id": "q9", "query": "", "doc_id": "bad", "title": "", "summary": "x"})  # rejected: not scored
    pq.write_table(pa.Table.from_pylist(rows), folder / "pool.parquet")
    return str(folder / "pool.parquet"), build_tiny_teacher(Path(folder) / "teacher")


def decide(pool: str, teacher: str, *overrides: str):
    config = load_config(LabelConfig, None, [f"pool={pool}", f"teacher.spec={teacher}", *overrides])
    return precision_check.decide(config, plan_shards(pool, 1000)[0])


def test_bf16_is_used_only_when_it_ranks_like_fp32(pool_and_teacher, monkeypatch):
    pool, teacher = pool_and_teacher
    monkeypatch.setattr(precision_check, "AGREEMENT_FLOOR", -1.0)
    config, record = decide(pool, teacher, "scoring.precision=bf16")
    assert config.scoring.precision == "bf16" and record["used"] == "bf16"
    assert record["check_rows"] == 18 and -1 <= record["spearman"] <= 1  # the rejected row is not in the check
    monkeypatch.setattr(precision_check, "AGREEMENT_FLOOR", 1.01)  # nothing can pass: the run falls back to fp32
    config, record = decide(pool, teacher, "scoring.precision=bf16")
    assert config.scoring.precision == "fp32" and "unlike fp32" in record["reason"]


def test_auto_on_a_cpu_without_bf16_and_fp32_skip_the_check(pool_and_teacher, monkeypatch):
    pool, teacher = pool_and_teacher
    monkeypatch.setattr(precision_check.precision, "cpu_bf16_flags", lambda: ())
    config, record = decide(pool, teacher, "scoring.precision=auto")
    assert config.scoring.precision == "fp32" and record["reason"] == "no bf16 in this CPU" and not record["check_rows"]
    config, record = decide(pool, teacher, "scoring.precision=fp32")
    assert (config.scoring.precision, record["reason"]) == ("fp32", "asked for fp32")
    config, record = decide(pool, teacher, "scoring.backend=vllm", "scoring.precision=bf16")
    assert config.scoring.precision == "fp32" and "transformers backend only" in record["reason"]
