"""Run one benchmark task in a fresh subprocess and record the peak memory of its process tree.

A task is a JSON-able dict; the script named runs it when called as ``python <script> --child <task> <result>`` and
writes its result dict as JSON. ``measure`` records the largest sum of RSS over the subprocess and all its
descendants (a Ray driver's GCS, raylet and workers included); ``measure_roles`` the largest RSS of any one process
of each role (driver, actor, worker, ...: a function of the command line). Sampled with psutil every ``sample_s``
seconds; shared pages count in every process that maps them, so the sums are an upper bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def measure(script: str, task: dict, workdir: Path, sample_s: float) -> dict:
    """Run ``task`` through ``script``'s ``--child`` entry in a subprocess; sample the RSS of its whole process tree
    until it exits. Returns the task's result plus ``peak_rss_mb`` and ``processes_at_peak``."""
    peak = {"rss": 0, "processes": 0}
    result = _run(script, task, workdir, lambda pid: _sample_tree(pid, peak, sample_s))
    return {**result, "peak_rss_mb": round(peak["rss"] / 2**20), "processes_at_peak": peak["processes"]}


def measure_roles(script: str, task: dict, workdir: Path, sample_s: float, role, timeline_s: float = 60.0) -> dict:
    """Like ``measure``, but the peak RSS (MiB) of the largest single process of each ``role(cmdline)``, when
    (seconds after the start, ``peak_at_s``): which stage of the task it fell in, and ``rss_timeline_mb``: per role,
    ``[seconds, MiB]`` of its largest process every ``timeline_s`` seconds (whether a process grows steadily or in a
    step)."""
    peaks: dict[str, tuple[int, float]] = {}
    timeline: dict[str, list[list[int]]] = {}
    result = _run(script, task, workdir, lambda pid: _sample_roles(pid, peaks, timeline, sample_s, timeline_s, role))
    return {
        **result,
        "peak_rss_mb": {name: round(rss / 2**20) for name, (rss, _) in sorted(peaks.items())},
        "peak_at_s": {name: round(at) for name, (_, at) in sorted(peaks.items())},
        "rss_timeline_mb": dict(sorted(timeline.items())),
    }


def run_child(child_args: list[str], run) -> None:
    """The ``--child <task> <result>`` entry: read the task, run ``run(task)``, write its result dict."""
    task_file, result_file = child_args
    Path(result_file).write_text(json.dumps(run(json.loads(Path(task_file).read_text()))))


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything below it (its Ray too)."""
    family = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()


def _run(script: str, task: dict, workdir: Path, sample) -> dict:
    task_file, result_file, log_file = (workdir / f"{task['name']}.{ext}" for ext in ("task.json", "json", "log"))
    task_file.write_text(json.dumps(task))
    with open(log_file, "w") as log:
        child = subprocess.Popen(
            [sys.executable, script, "--child", str(task_file), str(result_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = threading.Thread(target=sample, args=(child.pid,), daemon=True)
        sampler.start()
        code = child.wait()
        sampler.join()
    if code != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"{task['name']} failed (exit {code}); last lines of {log_file}:\n{tail}")
    return json.loads(result_file.read_text())


def _sample_roles(pid: int, peaks: dict, timeline: dict, interval: float, timeline_s: float, role) -> None:
    started, next_point = time.monotonic(), 0.0
    try:
        root = psutil.Process(pid)
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            now, largest = time.monotonic() - started, {}
            for process in [root, *root.children(recursive=True)]:
                try:
                    name, rss = role(process.cmdline()), process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                largest[name] = max(rss, largest.get(name, 0))
                if rss > peaks.get(name, (0, 0.0))[0]:
                    peaks[name] = (rss, now)
            if now >= next_point:
                for name, rss in largest.items():
                    timeline.setdefault(name, []).append([round(now), round(rss / 2**20)])
                next_point = now + timeline_s
            time.sleep(interval)
    except psutil.NoSuchProcess:
        return


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
