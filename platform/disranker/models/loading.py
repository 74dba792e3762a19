"""Loading the student and the teacher from a model spec, and scoring pairs with them in transformers.

A model spec is one string:

- a local HF folder (``save_pretrained`` output, e.g. a stage's output folder);
- a URI pyarrow understands (``s3://bucket/teacher_sft``): copied once into the local cache, then loaded;
- a packaged name: ``packaged:minilm`` (student) or ``packaged:smollm2`` (teacher), see ``models.packaged``.

Nothing is fetched from a model hub: every load is ``local_files_only``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import torch

from disranker.data import io
from disranker.models import packaged
from disranker.models.text import STUDENT_MAX_LENGTH, TEACHER_MAX_LENGTH, encode_student, encode_teacher

__all__ = [
    "ensure_teacher_pad_token",
    "load_student",
    "load_teacher_lm",
    "load_teacher_scorer",
    "resolve_model_dir",
    "score_encoded_student",
    "score_pairs_student",
    "score_pairs_teacher",
]

# Tokens that decoders commonly ship besides their EOS, tried in order when the tokenizer's pad is missing or is EOS.
# SmolLM2 pads with <|im_end|> (its EOS) and gets <|endoftext|>, its unknown token, which byte-level BPE never emits.
PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<unk>")
ADDED_PAD_TOKEN = "<|pad|>"


def resolve_model_dir(spec: str | Path) -> Path:
    """The local HF folder for a model spec (local folder, URI copied to the cache, or ``packaged:<name>``)."""
    text = str(spec)
    if text.startswith(packaged.PREFIX):
        return packaged.packaged_dir(text)
    if "://" in text:
        fs, path = io.resolve(text)
        folder = Path(path) if isinstance(fs, pafs.LocalFileSystem) else _fetch_remote(text, fs, path)
    else:
        folder = Path(text).expanduser()
    if not (folder / "config.json").is_file():
        names = ", ".join(packaged.PREFIX + name for name in packaged.PACKAGED)
        raise FileNotFoundError(
            f"model spec {text!r} is not an HF model folder (no config.json at {folder}): give a folder written by "
            f"save_pretrained, a URI to one (s3://...), or one of {names} (models are never downloaded from a hub)"
        )
    return folder


def _fetch_remote(uri: str, fs: pafs.FileSystem, path: str) -> Path:
    """Copy a remote model folder into the cache once. The cache key covers every file's path, size and mtime, so a
    folder rewritten at the same URI (a retrained stage) is fetched again rather than served stale."""
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    files = sorted((i.path, i.size, str(i.mtime)) for i in infos if i.type == pafs.FileType.File)
    if not files:
        raise FileNotFoundError(f"no model files at {uri}: the URI must name a folder written by save_pretrained")
    key = hashlib.sha256(repr((uri, files)).encode()).hexdigest()[:16]
    dest = packaged.cache_dir() / "remote" / f"{path.rstrip('/').rsplit('/', 1)[-1]}-{key}"

    def copy(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        pafs.copy_files(path, str(tmp), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())

    return packaged.publish_dir(copy, dest)


def load_student(spec: str | Path, *, num_labels: int = 1):
    """The student cross-encoder and its tokenizer. A bare encoder folder (MiniLM is a sentence-transformers
    BertModel) gets a fresh classification head; a trained student folder keeps its own."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = resolve_model_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=num_labels, local_files_only=True, trust_remote_code=False
    )
    return model, tokenizer


def ensure_teacher_pad_token(tokenizer) -> None:
    """Give a teacher tokenizer right padding and a pad token that is not its EOS.

    transformers' ``LlamaForSequenceClassification`` (``GenericForSequenceClassification`` in 5.x) pools at the
    rightmost token whose id is not ``config.pad_token_id``. Every teacher input ends in EOS (``encode_teacher``), so
    any pad id other than EOS pools exactly at that EOS; with pad == EOS the EOS itself counts as padding and the
    score would be read one token early (and a CPT collator masking pad labels would drop the EOS target). SmolLM2
    ships pad == EOS (<|im_end|>), hence the replacement. Right padding keeps position ids unchanged by padding."""
    tokenizer.padding_side = "right"
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the teacher tokenizer has no eos_token: scoring reads the hidden state at the EOS token")
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        return
    vocab = tokenizer.get_vocab()
    for token in PAD_CANDIDATES:
        if token in vocab and vocab[token] != eos:
            tokenizer.pad_token = token
            return
    # No spare token: add one; the caller resizes the embeddings (the new row is only ever seen under a 0 mask).
    tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})


def _load_teacher(spec: str | Path, auto_class, trust_remote_code: bool, **kwargs):
    from transformers import AutoTokenizer

    folder = resolve_model_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    ensure_teacher_pad_token(tokenizer)
    model = auto_class.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    # Set on the text config too: multimodal configs nest it, and the classifier reads get_text_config().
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_teacher_lm(spec: str | Path, trust_remote_code: bool = False):
    """The teacher as a causal LM (for CPT) and its tokenizer, with a pad token distinct from EOS."""
    from transformers import AutoModelForCausalLM

    return _load_teacher(spec, AutoModelForCausalLM, trust_remote_code)


def load_teacher_scorer(spec: str | Path, trust_remote_code: bool = False):
    """The teacher as a 1-logit scorer: a dense layer over the hidden state at the last non-pad token (the EOS).
    From a causal-LM or CPT folder the score layer is fresh; from an SFT folder it is the trained one."""
    from transformers import AutoModelForSequenceClassification

    return _load_teacher(spec, AutoModelForSequenceClassification, trust_remote_code, num_labels=1)


def check_scoring_args(model, batch_size: int) -> None:
    """What every pair scorer needs: a positive batch size and a model whose head gives one logit."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: it must be at least 1")
    if model.config.num_labels != 1:
        raise ValueError(f"the model has num_labels={model.config.num_labels}; scoring expects a 1-logit head")


def _score_in_length_order(
    model, lengths: np.ndarray, batch_size: int, make_batch: Callable[[np.ndarray], dict]
) -> np.ndarray:
    """Score rows in batches of similar length (least padding) and return the scores in the original row order."""
    check_scoring_args(model, batch_size)
    scores = np.empty(len(lengths), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    was_training = model.training
    model.eval()  # dropout off; restored below so a validation pass inside training leaves the model as it was
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = {k: v.to(model.device) for k, v in make_batch(rows).items()}
                logits = model(**batch).logits
                scores[rows] = logits[:, 0].float().cpu().numpy()
    finally:
        model.train(was_training)
    return scores


def score_pairs_teacher(
    model,
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    batch_size: int = 32,
    max_length: int = TEACHER_MAX_LENGTH,
) -> np.ndarray:
    """Raw teacher logits (float32, one per pair, input order), read at each text's EOS token."""
    if not len(queries):
        return np.empty(0, dtype=np.float32)
    encoded = encode_teacher(tokenizer, queries, titles, summaries, max_length=max_length)
    ids = encoded["input_ids"]

    def make_batch(rows: np.ndarray) -> dict:
        # Right padding: the classifier pools at the rightmost non-pad token, which must be each row's EOS.
        padded = tokenizer.pad(
            {"input_ids": [ids[i] for i in rows]}, padding=True, padding_side="right", return_tensors="pt"
        )
        return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}

    return _score_in_length_order(model, np.array([len(row) for row in ids]), batch_size, make_batch)


def score_pairs_student(
    model,
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    batch_size: int = 64,
    max_length: int = STUDENT_MAX_LENGTH,
) -> np.ndarray:
    """Raw student logits (float32, one per pair, input order)."""
    if not len(queries):
        return np.empty(0, dtype=np.float32)
    # Tokenise once, padded to the longest pair; each batch then drops the columns that are padding in all its rows.
    encoded = encode_student(tokenizer, queries, titles, summaries, max_length=max_length, return_tensors="np")
    return score_encoded_student(model, encoded, batch_size)


def score_encoded_student(model, encoded: Mapping[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Raw student logits (float32, one per row) of pairs already encoded (``encode_student``'s arrays, or the
    endpoint's ``serving.pair_encoding``), in length-sorted batches cut to their longest row."""
    mask = encoded["attention_mask"].astype(bool)

    def make_batch(rows: np.ndarray) -> dict:
        keep = mask[rows].any(axis=0)
        return {name: torch.from_numpy(np.ascontiguousarray(array[rows][:, keep])) for name, array in encoded.items()}

    return _score_in_length_order(model, mask.sum(axis=1), batch_size, make_batch)
