"""``disranker.json``: what every stage writes beside its output, so a served student traces back to its clicks.

Fields: stage, parents (the input artifacts' own lineage ids), config, data fingerprint, metrics, git commit,
created_at, and ``id`` (a hash of stage + config + parents + data fingerprint). A stage whose folder already holds a
record with the same id is complete and can be skipped: that is how a rerun resumes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from disranker.data import io

FILENAME = "disranker.json"
# Old stage names that records written before a rename still hold, read as today's name; kept for one release.
STAGE_ALIASES = {"labeling": "label"}


def lineage_id(stage: str, config: dict[str, Any], parents: Iterable[str] = (), fingerprint: str = "") -> str:
    """A stable id for "this stage, run with this config, on these inputs"; excludes time and metrics."""
    payload = json.dumps(
        {"stage": stage, "config": config, "parents": sorted(parents), "fingerprint": fingerprint},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def write_lineage(
    output_dir: str,
    stage: str,
    config: dict[str, Any],
    *,
    parents: Iterable[str] = (),
    fingerprint: str = "",
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    parents = list(parents)
    record = {
        "id": lineage_id(stage, config, parents, fingerprint),
        "stage": stage,
        "parents": parents,
        "config": config,
        "data_fingerprint": fingerprint,
        "metrics": metrics or {},
        "git_commit": git_commit(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    io.write_json(record, io.join(output_dir, FILENAME))
    return record


def read_lineage(output_dir: str) -> dict[str, Any] | None:
    path = io.join(output_dir, FILENAME)
    return io.read_json(path) if io.exists(path) else None


def stage_of(record: dict[str, Any]) -> str | None:
    """The record's stage under today's name, so a folder written before a stage was renamed is still accepted."""
    stage = record.get("stage")
    return STAGE_ALIASES.get(stage, stage)


def record_above(uri: str, levels: int = 3) -> dict[str, Any] | None:
    """The record of the stage that wrote ``uri``: its own folder's, else the nearest of the ``levels - 1`` folders
    above (a table file inside a stage folder, or ``labels/`` inside the labeling folder). ``levels=1`` for a model
    folder, whose own record is the only one that describes it; ``packaged:`` specs have none."""
    if uri.startswith("packaged:"):
        return None
    folder = uri
    for _ in range(levels):
        if folder and io.exists(io.join(folder, FILENAME)):
            return read_lineage(folder)
        folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
    return None


def parent_ids(tables: Iterable[str] = (), models: Iterable[str] = ()) -> list[str]:
    """The lineage ids of the stages that wrote these input tables and model folders, each once, in order."""
    records = [*(record_above(t) for t in tables), *(record_above(m, levels=1) for m in models)]
    return list(dict.fromkeys(record["id"] for record in records if record and record.get("id")))


def is_complete(output_dir: str, expected_id: str) -> bool:
    """True when ``output_dir`` holds a finished record with this id (the record is written last)."""
    record = read_lineage(output_dir)
    return record is not None and record.get("id") == expected_id


def file_fingerprint(paths: Iterable[str | Path]) -> str:
    """sha256 over the files' names and bytes (local paths or URIs), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(Path(path).name.encode())
        fs, resolved = io.resolve(path)
        with fs.open_input_stream(resolved) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None outside a git checkout (e.g. an installed wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
