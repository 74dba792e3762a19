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


@pytest.fixture(scope="session")
def smoke_inputs(tmp_path_factory, wordnet_dir) -> dict[str, str]:
    """What the ``*_smoke.yaml`` configs read (tiny corpus, tiny models, tiny labels), built once per session; tests
    that train read these and write elsewhere."""
    from disranker.testing.smoke import build_smoke_inputs

    return build_smoke_inputs(tmp_path_factory.mktemp("smoke"), wordnet_dir=str(wordnet_dir))


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory) -> str:
    """A tiny BERT cross-encoder folder built from a config (read-only: tests that change weights copy it)."""
    from disranker.testing.tiny import build_tiny_student

    return build_tiny_student(tmp_path_factory.mktemp("tiny_student"))


@pytest.fixture(scope="module")
def ray_start_2_cpus(monkeypatch_module):
    """A local Ray with 2 CPUs and a small object store, shut down after the module's tests.

    A Ray Train report costs ~1.75 s at the default health-check interval (docs/operations.md); 0.2 s keeps tests fast.
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


@pytest.fixture(scope="session")
def packed_and_plain():
    """``run(model, tokenizer, groups, max_length, row_tokens)`` → the hinge loss's scores and gradients through one
    padded row per document and through packed rows, and the packed batch: the check that packing changes nothing."""
    from disranker.models.packing import PackedRows, packed_scores
    from disranker.teacher import data
    from disranker.teacher.losses import rank_loss

    def scores_and_gradients(model, batch, flat_scores):
        model.zero_grad()
        scores = data.scatter_scores(flat_scores(batch).float(), batch["slots"], tuple(batch["labels"].shape))
        rank_loss("hinge", scores, batch["labels"], batch["mask"]).backward()
        return scores.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    def run(model, tokenizer, groups, max_length: int, row_tokens: int):
        size = max(len(group.labels) for group in groups)
        device = next(model.parameters()).device
        plain = {k: v.to(device) for k, v in data.collate_groups(groups, tokenizer, max_length, size).items()}
        packed = data.collate_groups_packed(groups, tokenizer, max_length, size, row_tokens)
        packed = {k: v.to(device) for k, v in packed.items()}
        rows = PackedRows.from_batch(packed)
        want = scores_and_gradients(
            model, plain, lambda b: model(b["input_ids"], attention_mask=b["attention_mask"]).logits[:, 0]
        )
        got = scores_and_gradients(model, packed, lambda b: packed_scores(model, model, rows))
        return want, got, packed

    return run
