"""Model loading, input formats and pair scoring, on the tiny models built in code (no hub, no Ray)."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch
from safetensors.torch import load_file

from disranker.models import loading, packaged
from disranker.models.loading import (
    ensure_teacher_pad_token,
    load_student,
    load_teacher_lm,
    load_teacher_scorer,
    resolve_model_dir,
    score_pairs_student,
    score_pairs_teacher,
)
from disranker.models.text import encode_cpt, encode_student, encode_teacher
from disranker.testing.tiny import TRAINING_TEXT, build_tiny_student, build_tiny_teacher

QUERIES = ["dog", "a small domesticated carnivore with soft fur", "x", "grind with a sandblast", "the cat", "tree"]
TITLES = ["dog, domestic dog", "cat", "z", "sandblast", "cat, true cat", ""]
SUMMARIES = [
    "the dog barked all night",
    "the cat sat on the mat; feline, carnivore, animal",
    "q",
    "sandblast the stone wall until it is smooth and clean; abrade, grind, rub, wear",
    "",
    "a tall plant with a trunk",
]
LONG_SUMMARY = " ".join(["the dog barked at the cat in the house all night"] * 40)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    return build_tiny_student(tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def student(student_dir):
    return load_student(student_dir)


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the causal-LM folder gets a fresh score head: seed it so its scores are reproducible
        return load_teacher_scorer(teacher_dir)


@pytest.mark.parametrize("build", [build_tiny_student, build_tiny_teacher])
def test_tiny_builders_are_deterministic_and_fast(build, tmp_path):
    build(tmp_path / "warm")  # the first call pays for transformers' lazy imports
    started = time.perf_counter()
    first = build(tmp_path / "a")
    assert time.perf_counter() - started < 2
    second = build(tmp_path / "b")
    weights_a, weights_b = load_file(f"{first}/model.safetensors"), load_file(f"{second}/model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


def test_student_round_trip(student, student_dir):
    model, tokenizer = student
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 1 and tokenizer.padding_side == "right"
    # The saved head is loaded, not re-initialised: a second load scores identically.
    again = score_pairs_student(*load_student(student_dir), QUERIES, TITLES, SUMMARIES)
    np.testing.assert_array_equal(score_pairs_student(model, tokenizer, QUERIES, TITLES, SUMMARIES), again)


def test_teacher_round_trip(teacher_dir, teacher, tmp_path):
    lm, tokenizer = load_teacher_lm(teacher_dir)
    assert type(lm).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert lm.config.pad_token_id == tokenizer.pad_token_id and tokenizer.padding_side == "right"
    scorer, scorer_tokenizer = teacher
    assert type(scorer).__name__ == "LlamaForSequenceClassification"
    assert scorer.config.num_labels == 1 and scorer.config.pad_token_id == scorer_tokenizer.pad_token_id
    wide = load_teacher_scorer(build_tiny_teacher(tmp_path / "wide", head_dim_32=False))[0]
    assert wide.config.head_dim == 64 and scorer.config.head_dim == 32


@pytest.mark.parametrize("kind", ["student", "teacher"])
def test_scores_keep_input_order(kind, student, teacher):
    model, tokenizer = student if kind == "student" else teacher
    score = score_pairs_student if kind == "student" else score_pairs_teacher
    batched = score(model, tokenizer, QUERIES, TITLES, SUMMARIES, batch_size=4)
    assert batched.shape == (len(QUERIES),) and batched.dtype == np.float32
    pairs = zip(QUERIES, TITLES, SUMMARIES, strict=True)
    alone = [score(model, tokenizer, [q], [t], [s], batch_size=1)[0] for q, t, s in pairs]
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    assert np.diff(np.sort(batched)).min() > 1e-4  # scores far apart, so a mix-up of rows would show


def test_scoring_handles_empty_input_and_keeps_training_mode(student):
    model, tokenizer = student
    assert score_pairs_student(model, tokenizer, [], [], []).shape == (0,)
    model.train()
    score_pairs_student(model, tokenizer, QUERIES[:2], TITLES[:2], SUMMARIES[:2])
    assert model.training
    model.eval()


def test_teacher_score_is_read_at_eos(teacher):
    model, tokenizer = teacher
    row = encode_teacher(tokenizer, QUERIES[:1], TITLES[:1], SUMMARIES[:1])["input_ids"][0]
    assert row[-1] == tokenizer.eos_token_id
    with torch.inference_mode():
        hidden = model.model(torch.tensor([row])).last_hidden_state
        at_eos = model.score(hidden[0, -1]).item()
        padded = torch.tensor([row + [tokenizer.pad_token_id] * 7])
        mask = (padded != tokenizer.pad_token_id).long()
        padded_score = model(input_ids=padded, attention_mask=mask).logits[0, 0].item()
    scored = score_pairs_teacher(model, tokenizer, QUERIES[:1], TITLES[:1], SUMMARIES[:1])[0]
    assert scored == pytest.approx(at_eos, abs=1e-5)
    assert padded_score == pytest.approx(at_eos, abs=1e-5)


def test_pad_equal_to_eos_is_replaced(teacher_dir):
    tokenizer = load_teacher_lm(teacher_dir)[1]
    tokenizer.pad_token = tokenizer.eos_token  # what SmolLM2 ships
    ensure_teacher_pad_token(tokenizer)
    assert tokenizer.pad_token == "<|endoftext|>"


def test_missing_pad_token_is_added_and_embeddings_resized(teacher_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    assert bpe.get_vocab_size() == 400  # as many tokens as the model has embeddings: the added pad needs a new row
    folder = tmp_path / "no-pad"
    shutil.copytree(teacher_dir, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>").save_pretrained(folder)
    model, tokenizer = load_teacher_scorer(folder)
    assert tokenizer.pad_token == loading.ADDED_PAD_TOKEN and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == 401
    assert np.isfinite(score_pairs_teacher(model, tokenizer, QUERIES, TITLES, SUMMARIES)).all()


def test_encode_cpt_masks_the_prompt_and_ends_in_eos(teacher):
    tokenizer = teacher[1]
    full = encode_cpt(tokenizer, "a dog", "dog", "the dog barked")
    prompt_len = full["labels"].count(-100)
    assert prompt_len > 0 and full["labels"][:prompt_len] == [-100] * prompt_len
    assert full["labels"][prompt_len:] == full["input_ids"][prompt_len:]
    assert full["input_ids"][-1] == tokenizer.eos_token_id
    cut = encode_cpt(tokenizer, "a dog", "dog", LONG_SUMMARY, max_length=prompt_len * 2)
    assert len(cut["input_ids"]) == prompt_len * 2 and cut["input_ids"][-1] == tokenizer.eos_token_id
    assert cut["input_ids"][:prompt_len] == full["input_ids"][:prompt_len]


def test_encode_cpt_cuts_a_long_query_so_the_example_keeps_a_target(teacher):
    tokenizer = teacher[1]
    example = encode_cpt(tokenizer, LONG_SUMMARY, "dog", "the dog barked", max_length=16)
    assert len(example["input_ids"]) == 16 and example["input_ids"][-1] == tokenizer.eos_token_id
    assert example["labels"][:12] == [-100] * 12  # the prompt, cut to 3/4 of max_length
    assert all(label != -100 for label in example["labels"][12:])


def test_encode_teacher_keeps_eos_last_under_truncation(teacher):
    tokenizer = teacher[1]
    full = encode_teacher(tokenizer, ["a dog"], ["dog"], [LONG_SUMMARY])["input_ids"][0]
    cut = encode_teacher(tokenizer, ["a dog"], ["dog"], [LONG_SUMMARY], max_length=20)["input_ids"][0]
    assert len(full) > 20 and len(cut) == 20
    assert cut[-1] == tokenizer.eos_token_id and cut[:-1] == full[:19]


def test_encode_student_truncates_only_the_document(student):
    tokenizer = student[1]
    query = "a small domesticated carnivore with soft fur"  # 31 tokens with [CLS] and [SEP]
    cut = encode_student(tokenizer, [query], ["dog"], [LONG_SUMMARY], max_length=70, return_tensors=None)
    ids, segments = cut["input_ids"][0], cut["token_type_ids"][0]
    assert len(ids) == 70 and ids[-1] == tokenizer.sep_token_id
    query_ids = tokenizer(query)["input_ids"]  # [CLS] query [SEP]
    assert ids[: len(query_ids)] == query_ids and segments.count(0) == len(query_ids)


def test_encode_student_shortens_a_query_longer_than_the_limit_instead_of_failing(student):
    tokenizer = student[1]
    query = "a small domesticated carnivore with soft fur " * 3  # ~90 tokens: more than max_length alone
    cut = encode_student(tokenizer, [query], ["dog"], [LONG_SUMMARY], max_length=40, return_tensors=None)
    segments = cut["token_type_ids"][0]
    assert len(cut["input_ids"][0]) == 40
    assert 0 < segments.count(1) <= segments.count(0)  # both sides kept, the document cut at least as hard


def test_resolve_model_dir_errors_and_uris(student_dir, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not an HF model folder"):
        resolve_model_dir(tmp_path / "missing")
    with pytest.raises(ValueError, match="packaged:minilm"):
        resolve_model_dir("packaged:bert-large")
    assert resolve_model_dir(f"file://{student_dir}") == resolve_model_dir(student_dir)
    # A remote folder is copied into the cache once; the local filesystem stands in for s3 here.
    monkeypatch.setenv("DISRANKER_CACHE", str(tmp_path / "cache"))
    fetched = loading._fetch_remote("s3://bucket/student", pafs.LocalFileSystem(), student_dir)
    assert fetched.parent == packaged.cache_dir() / "remote" and (fetched / "config.json").is_file()
    assert loading._fetch_remote("s3://bucket/student", pafs.LocalFileSystem(), student_dir) == fetched
    assert len(list(fetched.parent.iterdir())) == 1
    assert load_student(str(fetched))[0].config.num_labels == 1


def test_publish_dir_builds_once(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        tmp.mkdir()
        (tmp / "done").write_text("x")

    dest = tmp_path / "cache" / "model"
    assert packaged.publish_dir(build, dest) == dest == packaged.publish_dir(build, dest)
    assert len(calls) == 1 and (dest / "done").is_file() and not calls[0].exists()
