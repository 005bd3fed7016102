"""Batched beam search: every source's beams are rows of one decoder batch.

Rows are ``batch * beam``; each step is one ``decode_step`` for all rows, a ``Search.step``
over whole tensors, and one ``reorder_state`` (``index_select``) by the chosen parents.

Finished hypotheses go to a per-source pool of the ``n_best`` best normalized scores.
Stopping rule: a source is done when its pool is full and no live hypothesis can still beat
the pool's worst entry. A live hypothesis with log-probability ``s <= 0`` can only lose
log-probability, so the best it can reach is ``s / max(lp)``, the largest length penalty
over the lengths it could still finish at (``step + 2 .. max_len``). Once done, a source's
pool is frozen; decoding ends when every source is done or ``max_len`` is reached, where the
surviving hypotheses are cut and compete in the pool unfinished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from s2s_core.decoding.config import DecodeConfig, length_penalty
from s2s_core.decoding.constraints import block_repeats, block_source, block_specials
from s2s_core.decoding.search import Candidates, make_search
from s2s_core.special import EOS_ID

NEG_INF = float("-inf")
# How often (in steps) to ask whether every source is done: each ask is a device sync.
DONE_CHECK_EVERY = 4


@dataclass
class Pool:
    """The ``n_best`` best finished hypotheses per source."""

    scores: Tensor  # normalized: [batch, n_best], -inf where empty
    log_probs: Tensor  # [batch, n_best]
    tokens: Tensor  # [batch, n_best, max_len]
    lengths: Tensor  # [batch, n_best]

    @classmethod
    def empty(cls, batch: int, n_best: int, max_len: int, device: torch.device) -> Pool:
        return cls(
            torch.full((batch, n_best), NEG_INF, device=device),
            torch.zeros(batch, n_best, device=device),
            torch.zeros(batch, n_best, max_len, dtype=torch.long, device=device),
            torch.zeros(batch, n_best, dtype=torch.long, device=device),
        )

    def add(self, scores: Tensor, log_probs: Tensor, tokens: Tensor, lengths: Tensor) -> None:
        """Merges new entries (``scores`` [batch, m], -inf = none) keeping the best."""
        all_scores = torch.cat([self.scores, scores], dim=1)
        best, idx = all_scores.topk(self.scores.size(1), dim=1)
        self.scores = best
        self.log_probs = torch.cat([self.log_probs, log_probs], 1).gather(1, idx)
        self.lengths = torch.cat([self.lengths, lengths], 1).gather(1, idx)
        all_tokens = torch.cat([self.tokens, tokens], dim=1)
        self.tokens = all_tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, all_tokens.size(-1)))


class BeamSearch:
    def __init__(self, model: Any, cfg: DecodeConfig, batch: int, device: torch.device) -> None:
        self.model, self.cfg = model, cfg
        self.batch, self.beam = batch, cfg.beam_size
        self.search = make_search(cfg)
        self.device = device
        size = self.beam // self.search.groups
        # Beams that start alive: the first of each group (the others would duplicate it).
        self.cum = torch.full((batch, self.beam), NEG_INF, device=device)
        self.cum[:, ::size] = 0.0
        self.tokens = torch.zeros(batch, self.beam, cfg.max_len, dtype=torch.long, device=device)
        self.pool = Pool.empty(batch, cfg.n_best, cfg.max_len, device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        ar = torch.arange(batch, device=device).unsqueeze(1)
        self.row_base = ar * self.beam  # [batch, 1]: first row of each source

    def run(self, state: Any, source_windows: Tensor | None) -> Pool:
        cfg = self.cfg
        rows = self.batch * self.beam
        state = self.model.reorder_state(state, torch.div(
            torch.arange(rows, device=self.device), self.beam, rounding_mode="floor"))
        prev = torch.full((rows,), 1, dtype=torch.long, device=self.device)  # <sos>
        for step in range(cfg.max_len):
            lprobs, state = self.model.decode_step(prev, state)
            lprobs = self._constrain(lprobs, step, source_windows)
            cand = self.search.step(lprobs.view(self.batch, self.beam, -1), self.cum)
            self._finalize(cand, step)
            parents = self._advance(cand, step)
            state = self.model.reorder_state(state, parents)
            prev = self.tokens[:, :, step].reshape(-1)
            if step + 1 < cfg.max_len:
                self._update_done(step)
                if (step + 1) % DONE_CHECK_EVERY == 0 and bool(self.done.all()):
                    return self.pool
        self._cut_survivors()
        return self.pool

    def _constrain(self, lprobs: Tensor, step: int, source_windows: Tensor | None) -> Tensor:
        cfg = self.cfg
        lprobs = lprobs.clone()
        block_specials(lprobs, step, cfg.min_len)
        history = self.tokens[:, :, :step].reshape(lprobs.size(0), step)
        if cfg.no_repeat_ngram:
            block_repeats(lprobs, history, cfg.no_repeat_ngram)
        if source_windows is not None:
            block_source(lprobs, history, source_windows, cfg.block_source_ngram)
        return lprobs

    def _lp(self, length: int) -> float:
        return float(length_penalty(length, self.cfg.length_penalty, self.cfg.length_penalty_form))

    def _finalize(self, cand: Candidates, step: int) -> None:
        """``<eos>`` among each group's top ``group_beam`` candidates ends a hypothesis."""
        batch, groups, width = cand.tokens.shape
        size = self.beam // groups
        in_beam = torch.arange(width, device=self.device) < size
        ends = (cand.tokens == EOS_ID) & in_beam & torch.isfinite(cand.scores)
        ends &= ~self.done.view(-1, 1, 1)
        scores = torch.where(ends, cand.scores / self._lp(step + 1), NEG_INF).view(batch, -1)
        parents = cand.parents.view(batch, -1)
        tokens = self.tokens.gather(1, parents.unsqueeze(-1).expand(-1, -1, self.cfg.max_len))
        tokens[:, :, step] = EOS_ID
        lengths = torch.full_like(parents, step + 1)
        self.pool.add(scores, cand.scores.view(batch, -1), tokens, lengths)

    def _advance(self, cand: Candidates, step: int) -> Tensor:
        """Each group keeps its first ``group_beam`` non-``<eos>`` candidates; returns the
        state rows (``[batch * beam]``) the new beams continue from."""
        batch, groups, width = cand.tokens.shape
        size = self.beam // groups
        rank = torch.arange(width, device=self.device)
        key = rank + width * (cand.tokens == EOS_ID).long()  # <eos> sorts last
        keep = key.argsort(dim=-1)[..., :size]  # [batch, groups, size]
        scores = cand.scores.gather(-1, keep).view(batch, self.beam)
        tokens = cand.tokens.gather(-1, keep).view(batch, self.beam)
        parents = cand.parents.gather(-1, keep).view(batch, self.beam)
        self.tokens = self.tokens.gather(1, parents.unsqueeze(-1).expand(-1, -1, self.cfg.max_len))
        self.tokens[:, :, step] = tokens
        self.cum = scores
        return (self.row_base + parents).view(-1)

    def _update_done(self, step: int) -> None:
        cfg = self.cfg
        best_lp = max(self._lp(step + 2), self._lp(cfg.max_len))
        reachable = self.cum.max(dim=1).values / best_lp
        full = torch.isfinite(self.pool.scores[:, -1])
        self.done |= full & (reachable <= self.pool.scores[:, -1])

    def _cut_survivors(self) -> None:
        """At ``max_len`` the live hypotheses end without ``<eos>`` and join the pool."""
        max_len = self.cfg.max_len
        alive = torch.isfinite(self.cum) & ~self.done.unsqueeze(1)
        scores = torch.where(alive, self.cum / self._lp(max_len), NEG_INF)
        lengths = torch.full_like(self.tokens[:, :, 0], max_len)
        self.pool.add(scores, self.cum, self.tokens, lengths)
