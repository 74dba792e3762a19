"""The README's per-stage smoke commands, run as a newcomer would: in the README's order, in a fresh folder.

The first builds the smoke inputs (tiny corpus and models); each command must exit 0, the labeling smoke must label
with the SFT smoke's scorer, and the last (the comparison) must have scored the models the others trained.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SMOKE_COMMAND = re.compile(
    r"^\.venv/bin/python (-m (?:jobs\.\w+ +--config jobs/configs/\w+_smoke\.yaml"
    r"|disranker\.cli data build-smoke-inputs))",
    re.MULTILINE,
)


def readme_smoke_commands() -> list[list[str]]:
    commands = [match.group(1).split() for match in SMOKE_COMMAND.finditer((REPO / "README.md").read_text())]
    assert len(commands) >= 6, "the README lists the smoke inputs' step and each stage's smoke command"
    assert commands[0][-1] == "build-smoke-inputs", "the smoke inputs come first"
    return commands


def test_the_readme_smoke_commands_run_in_order_in_a_fresh_folder(tmp_path):
    (tmp_path / "jobs").symlink_to(REPO / "jobs")  # the configs and `python -m jobs.…`; outputs/ lands in tmp_path
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    for command in readme_smoke_commands():
        done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    metrics = json.loads((tmp_path / "outputs/smoke/compare/metrics.json").read_text())
    assert {"bm25", "random", "teacher", "student"} <= set(metrics)
    record = json.loads((tmp_path / "outputs/smoke/compare/disranker.json").read_text())
    trained = [json.loads((tmp_path / f"outputs/smoke/{folder}/disranker.json").read_text())["id"]
               for folder in ("teacher_sft", "distill")]  # fmt: skip
    assert set(trained) <= set(record["parents"])  # it compared what the smokes trained, not fresh random models
    labels = json.loads((tmp_path / "outputs/smoke/label/disranker.json").read_text())
    assert labels["metrics"]["teacher"].startswith("teacher_sft:")  # labeled with the SFT smoke's trained scorer
