"""Hard constraints on the next token, applied to log-probabilities of all rows at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from s2s_core.decoding.config import NEG_INF, DecodeConfig
from s2s_core.decoding.words import WordTable, block_word_repeats
from s2s_core.special import EOS_ID, PAD_ID, SOS_ID


def block_specials(lprobs: Tensor, step: int, min_len: int) -> None:
    """Never ``<pad>``/``<sos>``; no ``<eos>`` before ``min_len`` tokens exist."""
    lprobs[:, PAD_ID] = NEG_INF
    lprobs[:, SOS_ID] = NEG_INF
    if step < min_len:
        lprobs[:, EOS_ID] = NEG_INF


def ngram_windows(seqs: Tensor, n: int) -> Tensor:
    """All n-grams of each row: ``[rows, len]`` → ``[rows, len - n + 1, n]``; windows that
    touch padding get the out-of-vocabulary last token -1 so they never ban anything."""
    if seqs.size(1) < n:
        return seqs.new_zeros(seqs.size(0), 0, n)
    windows = seqs.unfold(1, n, 1)
    has_pad = (windows == PAD_ID).any(dim=-1, keepdim=True)
    last = windows[..., -1:].masked_fill(has_pad, -1)
    return torch.cat([windows[..., :-1], last], dim=-1)


def ban_ngram_completions(lprobs: Tensor, windows: Tensor, prefix: Tensor) -> None:
    """Bans, per row, every token that would complete one of ``windows`` [rows, W, n]
    given the row's last n-1 tokens ``prefix`` [rows, n-1]."""
    rows, vocab = lprobs.shape
    if windows.size(1) == 0:
        return
    match = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)  # [rows, W]
    banned = torch.where(match & (windows[..., -1] >= 0), windows[..., -1], vocab)
    mask = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=lprobs.device)
    mask.scatter_(1, banned, True)
    lprobs.masked_fill_(mask[:, :vocab], NEG_INF)


def block_repeats(lprobs: Tensor, history: Tensor, n: int) -> None:
    """No n-gram twice within a hypothesis; ``history`` [rows, step] is what it generated."""
    step = history.size(1)
    if n < 1 or step < n:
        return  # no complete n-gram yet
    ban_ngram_completions(lprobs, ngram_windows(history, n), history[:, step - n + 1 :])


def block_source(lprobs: Tensor, history: Tensor, source_windows: Tensor, n: int) -> None:
    """No n-gram of the row's source (``source_windows`` from ``ngram_windows``)."""
    step = history.size(1)
    if n < 1 or step < n - 1:
        return
    ban_ngram_completions(lprobs, source_windows, history[:, step - n + 1 :])


@dataclass(frozen=True)
class Rules:
    """Every hard rule of one decode, applied the same way by beam search, greedy search and
    sampling: ``source_windows`` (rows' source n-grams, for ``block_source_ngram``) and
    ``words`` (for ``max_word_uses``) are None when their rule is off."""

    cfg: DecodeConfig
    source_windows: Tensor | None
    words: WordTable | None

    def apply(self, lprobs: Tensor, history: Tensor) -> Tensor:
        """Blocks, in place, what ``history`` [rows, step] (each row's tokens so far) rules
        out next. A blocked token is never chosen, so reported scores stay the model's."""
        cfg, step = self.cfg, history.size(1)
        block_specials(lprobs, step, cfg.min_len)
        if cfg.no_repeat_ngram:
            block_repeats(lprobs, history, cfg.no_repeat_ngram)
        if self.source_windows is not None:
            block_source(lprobs, history, self.source_windows, cfg.block_source_ngram)
        if self.words is not None:
            block_word_repeats(lprobs, history, self.words, cfg.max_word_uses)
        return lprobs
