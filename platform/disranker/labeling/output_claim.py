"""What a labels folder is made from, and which driver is writing it.

``plan.json`` records what decides the shards' contents: a content hash of every pool file, ``rows_per_shard``, the
teacher's identity (its lineage id) and a hash of its weights, the scoring settings that change a score, and the
precision the run decided on (``labeling.precision_check``). A rerun
reuses finished shards only under the same record; otherwise it stops and says what changed, and ``relabel=true``
(``disranker label --relabel``) discards the old shards first.

``.lock`` keeps a second driver off a folder that one is writing (it would delete the first one's temporary files and
write the same shards twice). On a local path it is an ``flock``: atomic, and gone with its process, so never stale.
On an object store (no exclusive create) it is a file naming the owner, refreshed after each shard; one not refreshed
for ``STALE_AFTER_S`` seconds is taken over, and its old owner stops at its next refresh.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from disranker import lineage
from disranker.config import ConfigError
from disranker.data import io

PLAN_FILE = "plan.json"
LOCK_FILE = ".lock"
STALE_AFTER_S = 600.0  # a live owner refreshes the lock after every shard; a shard takes minutes, not ten
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def teacher_weights_digest(spec: str) -> str:
    """A hash of the teacher folder's config and weight files: a teacher retrained into the same folder differs."""
    from disranker.models.loading import resolve_model_dir

    folder = resolve_model_dir(spec)
    files = [p for p in Path(folder).iterdir() if p.name == "config.json" or p.name.endswith(WEIGHT_SUFFIXES)]
    return lineage.file_fingerprint(files)


def plan_record(pool_files: list[str], rows_per_shard: int, teacher_id: str, weights: str, scoring: dict) -> dict:
    """The plan.json content for these inputs; pool files are keyed by their path."""
    return {
        "pool": {file: lineage.file_fingerprint([file]) for file in pool_files},
        "rows_per_shard": rows_per_shard,
        "teacher": teacher_id,
        "teacher_weights": weights,
        "scoring": scoring,
    }


def claim_output(output_dir: str, plan: dict, relabel: bool) -> None:
    """Record ``plan`` for ``output_dir``; refuse a folder holding shards of another plan unless ``relabel``."""
    path = io.join(output_dir, PLAN_FILE)
    existing = io.read_json(path) if io.exists(path) else None
    if existing == plan:
        return
    if existing is not None:
        if not relabel:
            raise ConfigError(
                f"{output_dir} holds shards labeled from other inputs ({'; '.join(describe_changes(existing, plan))})"
                ": relabel them with relabel=true (disranker label --relabel), or write to a new output_dir"
            )
        discard_shards(output_dir)
    io.write_json(plan, path)


def describe_changes(old: dict, new: dict) -> list[str]:
    """What differs between two plan records, in words."""
    if set(old) != set(new):
        return ["the plan was written by another version of disranker"]
    changes = []
    for file in sorted(set(old["pool"]) | set(new["pool"])):
        if file not in new["pool"]:
            changes.append(f"pool file {file} is gone")
        elif file not in old["pool"]:
            changes.append(f"pool file {file} is new")
        elif old["pool"][file] != new["pool"][file]:
            changes.append(f"the content of pool file {file} changed")
    if old.get("precision_used") != new.get("precision_used"):
        changes.append(f"the shards were scored in {old.get('precision_used')}, this run scores in "
                       f"{new.get('precision_used')} (set scoring.precision to keep one)")  # fmt: skip
    if old["rows_per_shard"] != new["rows_per_shard"]:
        changes.append(f"rows_per_shard was {old['rows_per_shard']}, is {new['rows_per_shard']}")
    if old["teacher"] != new["teacher"]:
        changes.append(f"the teacher was {old['teacher']}, is {new['teacher']}")
    elif old["teacher_weights"] != new["teacher_weights"]:
        changes.append(f"the teacher's weights changed ({old['teacher_weights']} → {new['teacher_weights']})")
    for key in sorted(set(old["scoring"]) | set(new["scoring"])):
        if old["scoring"].get(key) != new["scoring"].get(key):
            changes.append(f"{key} was {old['scoring'].get(key)!r}, is {new['scoring'].get(key)!r}")
    return changes


def discard_shards(output_dir: str) -> None:
    """Delete the record, the plan, then the labels and the rejected rows (the lock stays: it is ours). The record
    goes first: a crash halfway must not leave a "finished" folder holding part of the shards."""
    discard_record(output_dir)
    fs, path = io.resolve(output_dir)
    fs.delete_file(f"{path}/{PLAN_FILE}")
    for name in ("labels", "rejected"):
        if fs.get_file_info(f"{path}/{name}").type == pafs.FileType.Directory:
            fs.delete_dir(f"{path}/{name}")


def discard_record(output_dir: str) -> None:
    """Delete the record of a finished run (``disranker.json``), if any."""
    fs, path = io.resolve(io.join(output_dir, lineage.FILENAME))
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


class LabelingBusy(RuntimeError):
    """Another live driver holds the output folder."""


@contextmanager
def output_lock(output_dir: str):
    """Hold ``output_dir``'s lock for the block; yields a function to call after each shard (it refreshes the lock
    and stops the run if another driver has taken it over)."""
    fs, folder = io.resolve(output_dir)
    fs.create_dir(folder, recursive=True)
    path = f"{folder}/{LOCK_FILE}"
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
    if isinstance(fs, pafs.LocalFileSystem):
        with _local_lock(path, owner, output_dir):
            yield lambda: None  # the kernel holds the lock for as long as this process lives
        return
    _acquire_remote(fs, path, owner, output_dir)

    def refresh() -> None:
        if _read(fs, path).get("token") != owner["token"]:
            raise LabelingBusy(f"{output_dir}: another driver took over the lock {path} (it found it stale); stopping")
        _write(fs, path, owner)

    try:
        yield refresh
    finally:
        if _read(fs, path).get("token") == owner["token"]:
            fs.delete_file(path)


@contextmanager
def _local_lock(path: str, owner: dict, output_dir: str):
    """``flock`` on the lock file: atomic, and released by the kernel when the holder dies, so a local lock is never
    stale. The file stays (deleting it would let a waiter lock an unlinked inode); its content names the holder."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(pafs.LocalFileSystem(), path)
            raise LabelingBusy(
                f"{output_dir} is being labeled by pid {holder.get('pid')} on {holder.get('host')} (it holds "
                f"{path}): wait for it to finish, or stop it and rerun"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps(owner).encode())
        yield
    finally:
        os.close(descriptor)  # releases the flock


def _acquire_remote(fs: pafs.FileSystem, path: str, owner: dict, output_dir: str) -> None:
    """Object stores have no exclusive create or kernel lock: a lock not refreshed for ``STALE_AFTER_S`` is taken
    over, and the old owner finds out at its next refresh."""
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.NotFound:
        holder = _read(fs, path)
        age = time.time() - info.mtime.timestamp() if info.mtime else STALE_AFTER_S + 1
        if age <= STALE_AFTER_S:
            raise LabelingBusy(
                f"{output_dir} is being labeled by pid {holder.get('pid')} on {holder.get('host')} (its lock "
                f"{path} was refreshed {age:.0f} s ago): wait for it to finish, or stop it and rerun"
            )
    _write(fs, path, owner)


def _read(fs: pafs.FileSystem, path: str) -> dict:
    try:
        with fs.open_input_stream(path) as src:
            return json.loads(src.read().decode() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write(fs: pafs.FileSystem, path: str, owner: dict) -> None:
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(owner).encode())
