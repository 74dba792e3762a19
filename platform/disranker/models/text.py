r"""The one module that turns (query, title, summary) into model inputs.

Training, labeling (both backends) and serving import these functions, so a teacher scores the same token ids in
vLLM as in transformers and the served student sees what it was trained on.

- teacher CPT: prompt ``query: {query}\n`` → target ``title: {title}\nsummary: {summary}`` + EOS (loss on the target);
- teacher scoring: ``query: {query}\ntitle: {title}\nsummary: {summary}`` + EOS, the EOS always last;
- student: ``[CLS] {query} [SEP] {title}. {summary} [SEP]`` (the tokenizer's pair form).

Truncation keeps the query: the teacher text is cut inside the summary (the EOS is put back after the cut, because the
score is read at the last token); the student cuts the document side (``longest_first``: a query is shortened only
when it alone takes more than half of ``max_length``, where ``only_second`` would raise instead).
"""

from __future__ import annotations

from collections.abc import Sequence

# A small English word list: the tiny test models' vocabulary (testing.tiny) and the word-salad check pairs of
# serving.onnx_runtime. For a tiny tokenizer, words outside it still tokenize, as
# characters (WordPiece ``##x`` pieces) or bytes (byte-level BPE), so any test string is representable.
WORDS = (
    "the a an of to in and or is are was for with on at by from as that this it its be not no which one two "
    "query title summary document search word words meaning kind type part group act person thing animal plant "
    "dog cat bird fish tree flower water fire earth air light sound music color red blue green small large "
    "run walk eat drink make take give move change grow cut grind sandblast stone metal wood glass paper book "
    "house room door city country river sea mountain food bread fruit apple day night time year man woman child "
    "hand head eye body heart mind idea work game sport ball team ship car road machine tool computer language"
).split()

TEACHER_MAX_LENGTH = 256  # tokens; SmolLM2 reads the demo's documents whole at this length
STUDENT_MAX_LENGTH = 256


def cpt_prompt(query: str) -> str:
    return f"query: {query}\n"


def cpt_target(title: str, summary: str) -> str:
    """The clicked document as the teacher learns to generate it during CPT (the caller appends EOS)."""
    return f"title: {title}\nsummary: {summary}"


def teacher_text(query: str, title: str, summary: str) -> str:
    """What the SFT teacher reads to score a pair, before its EOS token."""
    return f"{cpt_prompt(query)}{cpt_target(title, summary)}"


def pair_texts(table) -> tuple[list[str], list[str], list[str]]:
    """The (queries, titles, summaries) columns of a query–document table, as the encoders and scorers take them."""
    return table["query"].to_pylist(), table["title"].to_pylist(), table["summary"].to_pylist()


def student_document(title: str, summary: str) -> str:
    """The document side of the student's pair; a document with no title (MS MARCO) is its summary alone."""
    return f"{title}. {summary}" if title else summary


def encode_teacher(
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    max_length: int = TEACHER_MAX_LENGTH,
) -> dict[str, list[list[int]]]:
    """Token ids (unpadded) of the teacher-scoring texts, each ending in EOS even when truncated.

    Returns ``{"input_ids": [...], "attention_mask": [...]}``; pad with ``tokenizer.pad(..., return_tensors="pt")``
    (right padding, so the last non-pad token is the EOS the score is read from)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the teacher tokenizer has no eos_token: scoring reads the hidden state at the EOS token")
    texts = [teacher_text(q, t, s) for q, t, s in zip(queries, titles, summaries, strict=True)]
    encoded = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length - 1)
    ids = [row + [tokenizer.eos_token_id] for row in encoded["input_ids"]]
    return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}


CPT_PROMPT_SHARE = 0.75  # at most this share of a CPT example's tokens is prompt


def encode_cpt(tokenizer, query: str, title: str, summary: str, max_length: int = TEACHER_MAX_LENGTH) -> dict:
    """Token ids and labels of one CPT example: the prompt's labels are -100, so only the target carries loss.

    The target is cut to fit and always ends in EOS. A prompt (a long query) over ``CPT_PROMPT_SHARE`` of
    ``max_length`` is cut to that share, so one long query leaves its example a target instead of failing the run."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the teacher tokenizer has no eos_token: CPT targets end in EOS")
    if max_length < 4:
        raise ValueError(f"max_length={max_length} leaves no room for a CPT prompt and target")
    prompt = tokenizer(cpt_prompt(query), add_special_tokens=True)["input_ids"]
    prompt = prompt[: int(max_length * CPT_PROMPT_SHARE)]
    target = tokenizer(cpt_target(title, summary), add_special_tokens=False)["input_ids"]
    target = target[: max_length - len(prompt) - 1] + [tokenizer.eos_token_id]
    return {
        "input_ids": prompt + target,
        "attention_mask": [1] * (len(prompt) + len(target)),
        "labels": [-100] * len(prompt) + target,
    }


def encode_student(
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    max_length: int = STUDENT_MAX_LENGTH,
    return_tensors: str | None = "pt",
):
    """The student's pair encoding, padded to the longest in the batch; the document side is truncated first."""
    documents = [student_document(t, s) for t, s in zip(titles, summaries, strict=True)]
    return tokenizer(
        list(queries),
        documents,
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors=return_tensors,
    )
