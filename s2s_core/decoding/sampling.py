"""Greedy search and ancestral sampling: one row per output, one decoder call per step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from s2s_core.decoding.beam import DONE_CHECK_EVERY, Pool
from s2s_core.decoding.config import NEG_INF, DecodeConfig, length_penalty
from s2s_core.decoding.constraints import Rules
from s2s_core.special import EOS_ID, PAD_ID, SOS_ID


def filter_logits(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Keeps the ``top_k`` largest logits and the smallest set holding ``top_p`` of the
    probability mass (nucleus); the rest become -inf. The most likely token always stays."""
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        mass_before = sorted_logits.softmax(dim=-1).cumsum(dim=-1) - sorted_logits.softmax(-1)
        drop_sorted = mass_before >= top_p  # tokens entirely past the nucleus
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, NEG_INF)
    return logits


def decode_rows(
    model: Any,
    state: Any,
    rows: int,
    device: torch.device,
    rules: Rules,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Decodes every row of ``state`` to ``<eos>`` or ``max_len``: argmax when ``generator``
    is None, else a sample. Returns tokens [rows, max_len] (padded), lengths, log-probs."""
    cfg = rules.cfg
    tokens = torch.full((rows, cfg.max_len), PAD_ID, dtype=torch.long, device=device)
    lengths = torch.full((rows,), cfg.max_len, dtype=torch.long, device=device)
    log_probs = torch.zeros(rows, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    prev = torch.full((rows,), SOS_ID, dtype=torch.long, device=device)
    for step in range(cfg.max_len):
        lprobs, state = model.decode_step(prev, state)
        lprobs = rules.apply(lprobs, tokens[:, :step])
        if generator is None:
            token = lprobs.argmax(dim=-1)
        else:
            logits = filter_logits(lprobs / cfg.temperature, cfg.top_k, cfg.top_p)
            token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)
        token = token.masked_fill(finished, PAD_ID)
        gained = lprobs.gather(1, token.unsqueeze(1)).squeeze(1)
        log_probs += gained.masked_fill(finished, 0.0)
        tokens[:, step] = token
        ended = (token == EOS_ID) & ~finished
        lengths = torch.where(ended, step + 1, lengths)
        finished |= ended
        prev = token
        if (step + 1) % DONE_CHECK_EVERY == 0 and bool(finished.all()):
            break
    return tokens, lengths, log_probs


def rows_to_pool(
    tokens: Tensor, lengths: Tensor, log_probs: Tensor, cfg: DecodeConfig, per_source: int
) -> Pool:
    """Groups ``per_source`` consecutive rows into each source's pool, best score first."""
    scores = log_probs / length_penalty(
        lengths.float(), cfg.length_penalty, cfg.length_penalty_form
    )
    batch = tokens.size(0) // per_source
    pool = Pool.empty(batch, per_source, cfg.max_len, tokens.device)
    pool.add(
        scores.view(batch, per_source),
        log_probs.view(batch, per_source),
        tokens.view(batch, per_source, -1),
        lengths.view(batch, per_source),
    )
    return pool
