"""What a labels folder may be reused for, who may write it, and which rejected rows a rerun retries (no Ray)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker.config import ConfigError
from disranker.labeling import output_claim, shards
from disranker.labeling.output_claim import LabelingBusy, claim_output, output_lock, plan_record

SCORING = {"backend": "transformers", "precision": "fp32", "max_length": 96}


def _pool(path, summary: str = "doc") -> str:
    rows = [{"query_id": "q", "query": "a query", "doc_id": f"d{i}", "title": "", "summary": f"{summary} {i}"}
            for i in range(4)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _plan(pool: str, teacher: str = "teacher_sft:abc", weights: str = "w1", **scoring) -> dict:
    return plan_record([pool], 2, teacher, weights, {**SCORING, **scoring})


def test_a_pool_rewritten_under_the_same_name_and_row_count_is_refused_with_what_changed(tmp_path):
    pool = _pool(tmp_path / "pool.parquet")
    out = str(tmp_path / "labels")
    claim_output(out, _plan(pool), relabel=False)
    claim_output(out, _plan(pool), relabel=False)  # the same inputs: reused
    _pool(tmp_path / "pool.parquet", summary="rewritten")  # same file, same rows, other summaries
    with pytest.raises(ConfigError, match=r"the content of pool file .*pool\.parquet changed.*relabel=true"):
        claim_output(out, _plan(pool), relabel=False)


def test_a_retrained_teacher_in_the_same_folder_or_other_scoring_is_refused(tmp_path):
    pool = _pool(tmp_path / "pool.parquet")
    out = str(tmp_path / "labels")
    claim_output(out, _plan(pool), relabel=False)
    with pytest.raises(ConfigError, match="the teacher's weights changed"):
        claim_output(out, _plan(pool, weights="w2"), relabel=False)
    with pytest.raises(ConfigError, match="the teacher was teacher_sft:abc, is teacher_sft:def"):
        claim_output(out, _plan(pool, teacher="teacher_sft:def"), relabel=False)
    with pytest.raises(ConfigError, match="precision was 'fp32', is 'bf16'"):
        claim_output(out, _plan(pool, precision="bf16"), relabel=False)


def test_relabel_discards_the_old_shards_and_keeps_nothing_of_them(tmp_path):
    pool = _pool(tmp_path / "pool.parquet")
    out = tmp_path / "labels"
    claim_output(str(out), _plan(pool), relabel=False)
    for folder in ("labels", "rejected"):
        (out / folder).mkdir()
        (out / folder / "pool.rows-000000000-000000002.parquet").write_bytes(b"old")
    (out / "disranker.json").write_text("{}")
    claim_output(str(out), _plan(pool, weights="w2"), relabel=True)
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]
    assert json.loads((out / "plan.json").read_text())["teacher_weights"] == "w2"


def test_weights_digest_follows_the_weight_files(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights one")
    (folder / "tokenizer.json").write_text("{}")
    first = output_claim.teacher_weights_digest(str(folder))
    (folder / "tokenizer.json").write_text('{"other": 1}')  # not a weight: same digest
    assert output_claim.teacher_weights_digest(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"weights two")
    assert output_claim.teacher_weights_digest(str(folder)) != first


def test_a_second_driver_is_kept_off_a_held_folder_and_the_lock_goes_with_its_owner(tmp_path):
    out = str(tmp_path / "labels")
    with output_lock(out) as refresh:
        refresh()
        with pytest.raises(LabelingBusy, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            with output_lock(out):
                pass
    with output_lock(out):  # free again
        pass


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    out = tmp_path / "labels"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from disranker.labeling.output_claim import output_lock\n"
         f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LabelingBusy, match=f"pid {holder.pid} on"):
            with output_lock(str(out)):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(str(out)):  # the kernel released it with the process: no stale rule needed
        pass


def test_a_dead_owners_lock_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "labels").mkdir()
    lock = tmp_path / "labels" / ".lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    with output_lock(str(tmp_path / "labels")):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def _write_shard(out, name: str, reasons: list[str | None]) -> None:
    rows = pa.table(
        {
            "query_id": ["q"] * len(reasons),
            "query": ["a query"] * len(reasons),
            "doc_id": [f"d{i}" for i in range(len(reasons))],
            "title": [""] * len(reasons),
            "summary": ["doc"] * len(reasons),
            "_row": list(range(len(reasons))),
            "_reason": pa.array(reasons, pa.string()),
            "_record": pa.array(["{}" if r else None for r in reasons], pa.string()),
            "teacher_score": pa.array([0.5] * len(reasons), pa.float32()),
        }
    )
    shards.write_shard(str(out), name, rows, "teacher_sft:abc")


def test_shards_where_the_teacher_failed_are_reopened_and_validation_rejections_stay_final(tmp_path):
    _write_shard(tmp_path, "a", [None, "teacher failed: RuntimeError: transient", None])
    _write_shard(tmp_path, "b", [None, "query: ' ' is empty or whitespace-only"])
    _write_shard(tmp_path, "c", ["teacher_score: nan is not finite"])
    names = {"a", "b", "c"}
    assert shards.scorer_failures(str(tmp_path), names) == [("a", 1), ("c", 0)]
    shards.reopen(str(tmp_path), {"a", "c"})
    assert shards.complete_shards(str(tmp_path)) == {"b"}
    assert shards.teacher_values(str(tmp_path), names) == {"teacher_sft:abc"}
