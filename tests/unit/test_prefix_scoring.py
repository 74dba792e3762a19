"""Teacher scoring with each query's prompt run once: same scores as the plain path, fewer tokens through the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disranker.models.loading import load_student, load_teacher_scorer, score_pairs_teacher
from disranker.models.prefix_scoring import score_pairs_teacher_shared_prefix, supports_prefix_sharing
from disranker.testing.tiny import build_tiny_student, build_tiny_teacher

# Queries with several documents (one document long enough to be cut at max_length=48, one query whose prompt alone is
# longer, so it is scored the plain way), a lone query, and rows of one query that are not next to each other: every
# score must come back at its row.
ROWS = [
    ("the dog", "dog, domestic dog", "the dog barked all night"),
    ("grind with a sandblast", "sandblast", "sandblast the stone wall until it is smooth and clean"),
    ("the dog", "cat", "the cat sat on the mat; feline, carnivore, animal"),
    ("tree", "a tree", ""),
    ("the dog", "z", "q"),
    ("grind with a sandblast", "abrade", "grind, rub, wear " * 30),
    ("a small domesticated carnivore with soft fur", "cat, true cat", "the cat sat"),
    ("tree", "", "a tall plant with a trunk"),
    ("the dog", "dog", "the dog and the cat in the house"),
    (LONG_QUERY := "the dog barked at the cat in the house all night " * 6, "dog", "a dog"),  # its prompt is cut at 48
    (LONG_QUERY, "cat", "a cat"),
]
QUERIES, TITLES, SUMMARIES = (list(column) for column in zip(*ROWS, strict=True))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a seeded fresh score head, so that scores are far apart and reproducible
        return load_teacher_scorer(build_tiny_teacher(tmp_path_factory.mktemp("teacher")))


def _tokens_through_model(model, run) -> int:
    """Token positions the model's embedding layer saw while ``run()`` ran."""
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].numel()))
    try:
        run()
    finally:
        hook.remove()
    return sum(seen)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_shared_prompt_scores_equal_plain_scores(teacher, batch_size):
    model, tokenizer = teacher
    plain = score_pairs_teacher(model, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=4, max_length=48)
    shared = score_pairs_teacher_shared_prefix(
        model, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=batch_size, max_length=48
    )
    assert shared.dtype == np.float32 and shared.shape == (len(ROWS),)
    np.testing.assert_allclose(shared, plain, rtol=0, atol=1e-5)
    # Scores far apart, so a row given another row's score would show (the two long-query rows read the same cut text).
    assert np.diff(np.sort(plain[:-2])).min() > 1e-4


def test_each_prompt_runs_once(teacher):
    model, tokenizer = teacher
    args = (model, tokenizer, QUERIES, TITLES, SUMMARIES)
    plain = _tokens_through_model(model, lambda: score_pairs_teacher(*args, batch_size=1, max_length=256))
    shared = _tokens_through_model(model, lambda: score_pairs_teacher_shared_prefix(*args, batch_size=1))
    prompts = tokenizer([f"query: {q}\n" for q in QUERIES])["input_ids"]
    # batch_size 1 pads nothing: the plain path runs every row whole, the shared one runs each repeated query's prompt
    # once (4 rows of "the dog", 2 + 2 of the others) and the lone query's row whole.
    repeats = {q: QUERIES.count(q) for q in QUERIES}
    saved = sum(len(p) for p, q in zip(prompts, QUERIES, strict=True) if repeats[q] > 1)
    saved -= sum(len(tokenizer(f"query: {q}\n")["input_ids"]) for q in repeats if repeats[q] > 1)
    assert shared == plain - saved and saved > 0


def test_empty_input_training_mode_bad_arguments_and_which_models_share(teacher, tmp_path):
    model, tokenizer = teacher
    assert score_pairs_teacher_shared_prefix(model, tokenizer, [], [], []).shape == (0,)
    model.train()
    score_pairs_teacher_shared_prefix(model, tokenizer, QUERIES[:3], TITLES[:3], SUMMARIES[:3])
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match="batch_size=0"):
        score_pairs_teacher_shared_prefix(model, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=0)
    model.config.num_labels = 2  # a 2-logit head must not be read as a score from its first logit
    try:
        with pytest.raises(ValueError, match="num_labels=2; scoring expects a 1-logit head"):
            score_pairs_teacher_shared_prefix(model, tokenizer, QUERIES, TITLES, SUMMARIES)
    finally:
        model.config.num_labels = 1
    # An encoder classifier has no `score` layer on a causal base: it is scored the plain way.
    bert = load_student(build_tiny_student(tmp_path / "student"))[0]
    assert supports_prefix_sharing(model) and not supports_prefix_sharing(bert)
