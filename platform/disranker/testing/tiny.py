"""Tiny, randomly initialised student and teacher folders for tests and smoke runs, built in well under a second.

Both are built from a config in code with tokenizers made locally (the ``tokenizers`` library, no hub), seeded, and
saved as ordinary HF folders, so they go through exactly the loading code the real models use.

The labeling stage refuses a teacher without a trained score head (each actor would draw its own random head), so
``build_tiny_scorer`` gives the tiny causal LM a seeded head and saves it as a ``LlamaForSequenceClassification``
folder, which both labeling backends load. Hidden size 128 with 2 heads of 64 dims: vLLM's CPU attention needs
head_dim ≥ 32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from disranker.models.text import WORDS

TRAINING_TEXT = " ".join(
    [
        "query: a small domesticated carnivore\ntitle: cat, true cat\nsummary: the cat sat on the mat; feline",
        "query: a member of the genus canis\ntitle: dog, domestic dog\nsummary: the dog barked all night; canine",
        "query: grind with a sandblast\ntitle: sandblast\nsummary: sandblast the stone wall; abrade, grind",
        *WORDS,
    ]
    * 4
)

TEACHER_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2, as in SmolLM2
SEED = 0


def _seeded_model(model_class, config, seed: int):
    """Initialise ``model_class(config)`` from ``seed`` without disturbing the caller's global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def _save(model, tokenizer, out_dir: str | Path) -> str:
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def build_tiny_student(out_dir: str | Path, *, seed: int = SEED) -> str:
    """A 2-layer BERT cross-encoder (hidden 32, 2 heads, 1-logit head) and WordPiece tokenizer; returns the folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,:;!?'\"-()/&")
    tokens = list(dict.fromkeys([*specials, *chars, *(f"##{c}" for c in chars), *WORDS]))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,  # above STUDENT_MAX_LENGTH
        # 10x BERT's init std: at 0.02 a 32-wide random BERT gives every pair nearly the same score (spread ~1e-4).
        initializer_range=0.2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(_seeded_model(BertForSequenceClassification, config, seed), tokenizer, out_dir)


def _teacher_tokenizer():
    """A byte-level BPE tokenizer (~400 tokens) trained on TRAINING_TEXT, with SmolLM2's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(TEACHER_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    endoftext, im_start, im_end = TEACHER_SPECIAL_TOKENS
    # pad = <|endoftext|>, not EOS: see loading.ensure_teacher_pad_token for why the two must differ.
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=im_start, eos_token=im_end, unk_token=endoftext, pad_token=endoftext
    )


def build_tiny_teacher(out_dir: str | Path, *, head_dim_32: bool = True, seed: int = SEED) -> str:
    """A 2-layer Llama causal LM with a byte-level BPE tokenizer; returns the folder.

    Two attention heads of 32 dims (hidden 64), or with ``head_dim_32=False`` of 64 dims (hidden 128): vLLM's CPU
    attention needs head sizes of at least 32, and 64 is the size every attention backend supports."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _teacher_tokenizer()
    head_dim = 32 if head_dim_32 else 64
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=2 * head_dim,
        intermediate_size=4 * head_dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=512,  # above TEACHER_MAX_LENGTH
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(_seeded_model(LlamaForCausalLM, config, seed), tokenizer, out_dir)


def build_tiny_scorer(out_dir: str | Path, *, seed: int = SEED) -> str:
    """A tiny ``LlamaForSequenceClassification(num_labels=1)`` folder with a seeded score head; returns the folder."""
    import torch

    from disranker.models.loading import load_teacher_scorer

    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = build_tiny_teacher(tmp, head_dim_32=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, tokenizer = load_teacher_scorer(lm_dir)
    return _save(model, tokenizer, out_dir)
