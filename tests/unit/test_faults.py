"""The one failure-injection hook: its value travels through the environment unchanged, and a scorer crash happens
once across processes."""

from __future__ import annotations

import subprocess
import sys

from disranker.faults import ENV, FaultInjection, given_or_from_env


def test_a_fault_travels_through_the_environment_unchanged(monkeypatch):
    fault = FaultInjection(after_step=300, rank=1, trace_dir="/tmp/trace", crash_scorer_once="/tmp/marker")
    monkeypatch.delenv(ENV, raising=False)
    assert FaultInjection.from_env() is None and given_or_from_env(None) is None
    monkeypatch.setenv(ENV, fault.env()[ENV])
    assert FaultInjection.from_env() == fault and given_or_from_env(None) == fault
    passed = FaultInjection(after_step=7)
    assert given_or_from_env(passed) is passed  # the one passed in wins


def test_training_fault_fires_once_on_its_rank_and_step():
    fault = FaultInjection(after_step=5, rank=1)
    assert fault.fires(5, rank=1, resumed=False, in_dev_pass=False)
    assert not fault.fires(5, rank=0, resumed=False, in_dev_pass=False)
    assert not fault.fires(5, rank=1, resumed=True, in_dev_pass=False)  # a resumed attempt does not fail again
    assert not fault.fires(6, rank=1, resumed=False, in_dev_pass=False)
    in_dev = FaultInjection(after_step=5, rank=1, in_dev_pass=True)
    assert in_dev.fires(8, rank=1, resumed=False, in_dev_pass=True) and not in_dev.fires(4, 1, False, True)


def test_the_scorer_crash_kills_only_the_first_process(tmp_path):
    marker = tmp_path / "crashed"
    code = (
        "from disranker.faults import FaultInjection; "
        f"FaultInjection(crash_scorer_once={str(marker)!r}).crash_scorer_if_first(); print('scored')"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (first.returncode, first.stdout) == (1, "") and marker.exists()
    assert (second.returncode, second.stdout.strip()) == (0, "scored")
    FaultInjection().crash_scorer_if_first()  # no marker asked for: a no-op in this very process
