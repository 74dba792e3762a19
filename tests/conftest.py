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
