"""Ray start-up without starting Ray: an embedded Ray gets its metrics off, a named cluster is joined as it is."""

from __future__ import annotations

import os

import pytest
import ray

from disranker import runtime


@pytest.fixture
def init_calls(monkeypatch):
    """Each ``ray.init`` call's arguments, and the metrics switch in the environment while it ran."""
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append((kwargs, os.environ.get(runtime.METRICS_SWITCH))))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(runtime.METRICS_SWITCH, raising=False)
    return calls


def test_an_embedded_ray_starts_with_its_metrics_collection_off(init_calls):
    runtime.ensure_ray(num_cpus=2)
    assert init_calls == [({"address": None, "num_cpus": 2}, "0")]
    assert runtime.METRICS_SWITCH not in os.environ  # only Ray's processes have it: a later Ray starts as usual


def test_a_users_metrics_switch_wins(init_calls, monkeypatch):
    monkeypatch.setenv(runtime.METRICS_SWITCH, "1")
    runtime.ensure_ray()
    assert init_calls == [({"address": None}, "1")] and os.environ[runtime.METRICS_SWITCH] == "1"


@pytest.mark.parametrize("address, env", [("ray://head:10001", None), (None, "head:6379")])
def test_a_named_cluster_keeps_its_own_metrics(init_calls, monkeypatch, address, env):
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    runtime.ensure_ray(address)
    assert init_calls == [({"address": address}, None)]
