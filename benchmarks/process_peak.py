"""Run one benchmark task in a fresh subprocess and record the peak memory of its whole process tree.

A task is a JSON-able dict; the script named runs it when called as ``python <script> --child <task> <result>`` and
writes its result dict as JSON. The peak is the largest sum of RSS over the subprocess and all its descendants (a
Ray driver's GCS, raylet and workers included), sampled with psutil every ``sample_s`` seconds; shared pages count in
every process that maps them, so it is an upper bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def measure(script: str, task: dict, workdir: Path, sample_s: float) -> dict:
    """Run ``task`` through ``script``'s ``--child`` entry in a subprocess; sample the RSS of its whole process tree
    until it exits. Returns the task's result plus ``peak_rss_mb`` and ``processes_at_peak``."""
    task_file, result_file, log_file = (workdir / f"{task['name']}.{ext}" for ext in ("task.json", "json", "log"))
    task_file.write_text(json.dumps(task))
    with open(log_file, "w") as log:
        child = subprocess.Popen(
            [sys.executable, script, "--child", str(task_file), str(result_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        peak = {"rss": 0, "processes": 0}
        sampler = threading.Thread(target=_sample_tree, args=(child.pid, peak, sample_s), daemon=True)
        sampler.start()
        code = child.wait()
        sampler.join()
    if code != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"{task['name']} failed (exit {code}); last lines of {log_file}:\n{tail}")
    return {
        **json.loads(result_file.read_text()),
        "peak_rss_mb": round(peak["rss"] / 2**20),
        "processes_at_peak": peak["processes"],
    }


def _sample_tree(pid: int, peak: dict, interval: float) -> None:
    try:
        root = psutil.Process(pid)
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            total, count = 0, 0
            for process in [root, *root.children(recursive=True)]:
                try:
                    total, count = total + process.memory_info().rss, count + 1
                except psutil.NoSuchProcess:  # exited between listing and reading
                    pass
            if total > peak["rss"]:
                peak.update(rss=total, processes=count)
            time.sleep(interval)
    except psutil.NoSuchProcess:
        return
