"""Teacher scoring that runs each query's prompt once and shares its key/value cache among the query's documents.

The teacher reads ``query: {query}\\n`` first and the document after it, and its attention is causal, so the prompt's
keys and values are the same for every document of a query. A search pool has many documents per query (the demo
pool: 16), and the prompt is a large share of the text (demo: 16.5 of 39.7 tokens), so computing it once per query
removes about 40 % of the tokens the model runs, which is what bounds scoring on CPU. vLLM does
the same with its automatic prefix caching; this is that, for the transformers backend.

The prompts of up to ``batch_size`` queries run in one forward pass (right-padded) and keep their cache; the
documents' remainders then run in batches of ``batch_size``, shortest first and mixing queries: each row gets a copy
of its own prompt's keys and values, positions that continue after its prompt, and a mask that shows it its prompt (not
the padding) and its own tokens. The score is read where ``score_pairs_teacher`` reads it: the final hidden state of
the row's EOS, through the model's ``score`` layer. The scores equal ``score_pairs_teacher``'s to float32 rounding
(tests/unit/test_prefix_scoring.py); a lone document of its query has nothing to share and runs whole.

A row whose full token ids do not start with its prompt's ids (a tokenizer that merges across the newline, or a query
cut by ``max_length``) is scored the plain way, as is any teacher without a ``score`` layer on a ``base_model``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from disranker.models.loading import check_scoring_args, score_pairs_teacher
from disranker.models.text import TEACHER_MAX_LENGTH, cpt_prompt, encode_teacher


def supports_prefix_sharing(model) -> bool:
    """True for decoder classifiers laid out as ``base_model`` + a ``score`` layer (Llama, Qwen2, Mistral, ...)."""
    return isinstance(getattr(model, "score", None), torch.nn.Linear) and model.base_model is not model


def score_pairs_teacher_shared_prefix(
    model,
    tokenizer,
    queries: Sequence[str],
    titles: Sequence[str],
    summaries: Sequence[str],
    batch_size: int = 32,
    max_length: int = TEACHER_MAX_LENGTH,
) -> np.ndarray:
    """Raw teacher logits (float32, input order), each query's prompt computed once for all its documents."""
    check_scoring_args(model, batch_size)
    if not supports_prefix_sharing(model):
        return score_pairs_teacher(model, tokenizer, queries, titles, summaries, batch_size, max_length)
    scores = np.full(len(queries), np.nan, dtype=np.float32)
    ids = encode_teacher(tokenizer, queries, titles, summaries, max_length=max_length)["input_ids"] if queries else []
    rows_of = defaultdict(list)
    for row, query in enumerate(queries):
        rows_of[query].append(row)
    repeated = [query for query, rows in rows_of.items() if len(rows) > 1]  # a lone document has nothing to share
    prompt_ids = tokenizer([cpt_prompt(q) for q in repeated], add_special_tokens=True)["input_ids"] if repeated else []
    prompts = dict(zip(repeated, prompt_ids, strict=True))
    shared = {
        query: [r for r in rows_of[query] if len(ids[r]) > len(prompts[query]) and _starts_with(ids[r], prompts[query])]
        for query in repeated
    }
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            groups = [query for query in repeated if shared[query]]
            for start in range(0, len(groups), batch_size):  # one prompt pass per batch_size queries
                chunk = groups[start : start + batch_size]
                rows = [r for query in chunk for r in shared[query]]
                prompt_of_row = [i for i, query in enumerate(chunk) for _ in shared[query]]
                suffixes = [ids[r][len(prompts[chunk[i]]) :] for r, i in zip(rows, prompt_of_row, strict=True)]
                chunk_prompts = [prompts[query] for query in chunk]
                scores[rows] = _score_after_prompts(model, chunk_prompts, suffixes, np.array(prompt_of_row), batch_size)
    finally:
        model.train(was_training)
    plain = np.flatnonzero(np.isnan(scores)).tolist()
    if plain:
        picked = [[column[r] for r in plain] for column in (queries, titles, summaries)]
        scores[plain] = score_pairs_teacher(model, tokenizer, *picked, batch_size=batch_size, max_length=max_length)
    return scores


def _starts_with(ids: list[int], prefix: list[int]) -> bool:
    return ids[: len(prefix)] == prefix


def _score_after_prompts(
    model, prompts: list[list[int]], suffixes: list[list[int]], prompt_of: np.ndarray, batch_size: int
) -> np.ndarray:
    """Scores of ``prompts[prompt_of[i]] + suffixes[i]``: the prompts in one pass, then the suffixes by length.

    A batch mixes queries: each row gets its prompt's cached keys and values (prompts right-padded to the longest, the
    padding masked), its own positions after its prompt, and the batch is padded only to its longest suffix."""
    device = model.device
    prompt_lengths = torch.tensor([len(p) for p in prompts])
    prompt_tokens, prompt_mask = _right_padded(prompts)
    cache = model.base_model(
        input_ids=prompt_tokens.to(device), attention_mask=prompt_mask.to(device), use_cache=True
    ).past_key_values
    lengths = np.array([len(s) for s in suffixes])
    scores = np.empty(len(suffixes), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        owners = torch.as_tensor(prompt_of[rows])
        tokens, suffix_mask = _right_padded([suffixes[r] for r in rows])
        positions = prompt_lengths[owners][:, None] + torch.arange(tokens.shape[1])
        batch_cache = copy.deepcopy(cache)  # the forward pass appends the suffixes' keys and values to its cache
        batch_cache.batch_select_indices(owners.to(device))
        hidden = model.base_model(
            input_ids=tokens.to(device),
            attention_mask=torch.cat([prompt_mask[owners], suffix_mask], dim=1).to(device),
            position_ids=positions.to(device),
            past_key_values=batch_cache,
            use_cache=True,
        ).last_hidden_state
        last = torch.as_tensor(lengths[rows] - 1, device=device)
        pooled = hidden[torch.arange(len(rows), device=device), last]
        scores[rows] = model.score(pooled)[:, 0].float().cpu().numpy()
    return scores


def _right_padded(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the right with 0 (masked, so the id does not matter) and their attention mask."""
    width = max(len(s) for s in sequences)
    tokens = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        tokens[i, : len(sequence)] = torch.tensor(sequence)
        mask[i, : len(sequence)] = 1
    return tokens, mask
