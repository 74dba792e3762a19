"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest

from disranker.data.wordnet import WordNetNotFound, find_wordnet_dir


@pytest.fixture(scope="session")
def wordnet_dir():
    """The real WordNet 3.0 files (`make test` installs them first); a clear failure, not a skip, without them."""
    try:
        return find_wordnet_dir()
    except WordNetNotFound as exc:
        pytest.fail(f"{exc} (`make test` fetches them)")


@pytest.fixture(scope="module")
def ray_start_2_cpus(monkeypatch_module):
    """A local Ray with 2 CPUs and a small object store, shut down after the module's tests.

    Each report to Ray Train costs ~1.75 s at the default health-check interval (PITFALLS.md); 0.2 s keeps tests fast.
    """
    import ray

    monkeypatch_module.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    ray.init(num_cpus=2, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
