"""The real packaged models: MiniLM as the student, SmolLM2's GGUF converted once into an HF folder for the teacher."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from safetensors import safe_open

from disranker.models import packaged
from disranker.models.loading import (
    load_student,
    load_teacher_lm,
    load_teacher_scorer,
    resolve_model_dir,
    score_pairs_student,
    score_pairs_teacher,
)
from disranker.models.text import encode_cpt

QUERIES = ["a small domesticated carnivore", "grind with a sandblast"]
TITLES = ["cat, true cat, felis catus", "sandblast"]
SUMMARIES = ["the cat sat on the mat; feline", "sandblast the stone wall; abrade"]


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory):
    """Converts the GGUF once for this module, into a throwaway cache (never the user's ~/.cache), which stays
    $DISRANKER_CACHE until the module's tests are done."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISRANKER_CACHE", str(tmp_path_factory.mktemp("disranker-cache")))
        started = time.perf_counter()
        folder = resolve_model_dir("packaged:smollm2")
        print(f"GGUF conversion: {time.perf_counter() - started:.1f} s")
        yield folder


def test_minilm_loads_as_a_one_logit_student():
    model, tokenizer = load_student("packaged:minilm")
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 1
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.7e6, rel=0.01)
    scores = score_pairs_student(model, tokenizer, QUERIES, TITLES, SUMMARIES)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_smollm2_is_converted_once(smollm2_dir):
    assert smollm2_dir == packaged.cache_dir() / packaged.SMOLLM2_CACHE_NAME  # the fixture's cache is still set
    weights = smollm2_dir / "model.safetensors"
    with safe_open(weights, framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in list(f.keys())[:5]} == {torch.float32}
    mtime = weights.stat().st_mtime_ns
    started = time.perf_counter()
    assert resolve_model_dir("packaged:smollm2") == smollm2_dir
    assert time.perf_counter() - started < 1
    assert weights.stat().st_mtime_ns == mtime
    assert not [p for p in smollm2_dir.parent.iterdir() if p.name.startswith(".tmp-")]


def test_smollm2_loads_as_lm_and_scorer(smollm2_dir):
    lm, tokenizer = load_teacher_lm(smollm2_dir)
    assert type(lm).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    example = encode_cpt(tokenizer, QUERIES[0], TITLES[0], SUMMARIES[0])
    with torch.inference_mode():
        loss = lm(**{k: torch.tensor([v]) for k, v in example.items()}).loss
    assert torch.isfinite(loss)
    del lm
    scorer, tokenizer = load_teacher_scorer(smollm2_dir)
    assert type(scorer).__name__ == "LlamaForSequenceClassification"
    assert scorer.config.num_labels == 1 and scorer.config.pad_token_id == tokenizer.pad_token_id
    scores = score_pairs_teacher(scorer, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=2)
    assert scores.shape == (2,) and scores.dtype == np.float32 and np.isfinite(scores).all()


def test_smollm2_packed_groups_give_the_plain_scores_and_gradients(smollm2_dir, packed_and_plain):
    from disranker.teacher.data import QueryGroup

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = load_teacher_scorer(smollm2_dir)
    groups = [
        QueryGroup(
            QUERIES[0], [TITLES[0], TITLES[1], "dog"], [SUMMARIES[0], SUMMARIES[1], "the dog barked"], [4, 0, 1]
        ),
        QueryGroup(QUERIES[1], TITLES[::-1], SUMMARIES[::-1], [4, 0]),
    ]
    (want_scores, want_grads), (got_scores, got_grads), batch = packed_and_plain(
        model.train(), tokenizer, groups, max_length=64, row_tokens=512
    )
    assert batch["input_ids"].shape[0] == 1 and int(batch["standalone"]) == 0
    torch.testing.assert_close(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    assert len(want_grads) == len(got_grads) == len(list(model.parameters()))
    for name, grad in want_grads.items():
        # 30 layers of float32 sums in another order: within 1e-3 of the tensor's largest gradient (seen: 7e-5)
        assert (got_grads[name] - grad).abs().max() <= 1e-3 * grad.abs().max(), name
