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

from s2s_core.decoding.config import NEG_INF, DecodeConfig, length_penalty
from s2s_core.decoding.constraints import Rules
from s2s_core.decoding.search import Candidates, make_search
from s2s_core.special import EOS_ID, SOS_ID

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
        """Merges new entries (``scores`` [batch, m], -inf = none), keeping the best."""
        all_scores = torch.cat([self.scores, scores], dim=1)
        best, idx = all_scores.topk(self.scores.size(1), dim=1)
        self.scores = best
        self.log_probs = torch.cat([self.log_probs, log_probs], 1).gather(1, idx)
        self.lengths = torch.cat([self.lengths, lengths], 1).gather(1, idx)
        all_tokens = torch.cat([self.tokens, tokens], dim=1)
        self.tokens = all_tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, all_tokens.size(-1)))

    def merge_groups(self, groups: int, n_best: int) -> Pool:
        """Per-group pools (rows ``batch * groups``) → one pool per source, best first; a
        sequence that several groups reached is kept once."""
        batch = self.scores.size(0) // groups
        tokens = self.tokens.view(batch, -1, self.tokens.size(-1))
        lengths = self.lengths.view(batch, -1)
        scores = self.scores.view(batch, -1)
        if groups > 1:
            same = _same_sequences(tokens, lengths, tokens, lengths)
            earlier = torch.ones_like(same[0]).tril(diagonal=-1)
            scores = scores.masked_fill((same & earlier).any(dim=2), NEG_INF)
        merged = Pool.empty(batch, n_best, tokens.size(-1), scores.device)
        merged.add(scores, self.log_probs.view(batch, -1), tokens, lengths)
        return merged


def _same_sequences(a: Tensor, a_len: Tensor, b: Tensor, b_len: Tensor) -> Tensor:
    """[batch, m, n]: a[:, i] and b[:, j] hold the same tokens up to their (equal) length."""
    positions = torch.arange(a.size(-1), device=a.device)
    a = a.masked_fill(positions >= a_len.unsqueeze(-1), -1)  # ignore stale tails
    b = b.masked_fill(positions >= b_len.unsqueeze(-1), -1)
    return (a.unsqueeze(2) == b.unsqueeze(1)).all(dim=-1)


class BeamSearch:
    """One search over ``batch`` sources. With beam groups (Hamming diversity) each group
    keeps its own pool of ``ceil(n_best / groups)`` and its own stopping test, so that the
    n-best list draws on every group instead of the likeliest group crowding out the rest."""

    def __init__(self, model: Any, cfg: DecodeConfig, batch: int, device: torch.device) -> None:
        self.model, self.cfg = model, cfg
        self.batch, self.beam = batch, cfg.beam_size
        self.search = make_search(cfg)
        self.groups = self.search.groups
        self.size = self.beam // self.groups  # beams per group
        self.device = device
        # Beams that start alive: the first of each group (the others would duplicate it).
        self.cum = torch.full((batch, self.beam), NEG_INF, device=device)
        self.cum[:, :: self.size] = 0.0
        self.tokens = torch.zeros(batch, self.beam, cfg.max_len, dtype=torch.long, device=device)
        per_group = -(-cfg.n_best // self.groups)
        self.pool = Pool.empty(batch * self.groups, per_group, cfg.max_len, device)
        self.done = torch.zeros(batch * self.groups, dtype=torch.bool, device=device)
        self.row_base = torch.arange(batch, device=device).unsqueeze(1) * self.beam

    def run(self, state: Any, rules: Rules) -> Pool:
        cfg = self.cfg
        rows = torch.arange(self.batch * self.beam, device=self.device)
        state = self.model.reorder_state(state, torch.div(rows, self.beam, rounding_mode="floor"))
        prev = torch.full_like(rows, SOS_ID)
        for step in range(cfg.max_len):
            lprobs, state = self.model.decode_step(prev, state)
            lprobs = rules.apply(lprobs, self.tokens[:, :, :step].reshape(lprobs.size(0), step))
            cand = self.search.step(lprobs.view(self.batch, self.beam, -1), self.cum)
            self._finalize(cand, step)
            state = self.model.reorder_state(state, self._advance(cand, step), within_sources=True)
            prev = self.tokens[:, :, step].reshape(-1)
            if step + 1 < cfg.max_len:
                self._update_done(step)
                if (step + 1) % DONE_CHECK_EVERY == 0 and bool(self.done.all()):
                    break
        else:
            self._cut_survivors()
        return self.pool.merge_groups(self.groups, cfg.n_best)

    def _lp(self, length: int) -> float:
        return float(length_penalty(length, self.cfg.length_penalty, self.cfg.length_penalty_form))

    def _finalize(self, cand: Candidates, step: int) -> None:
        """``<eos>`` among a group's top ``size`` candidates ends a hypothesis."""
        width = cand.tokens.size(-1)
        in_beam = torch.arange(width, device=self.device) < self.size
        ends = (cand.tokens == EOS_ID) & in_beam & torch.isfinite(cand.scores)
        ends &= ~self.done.view(self.batch, self.groups, 1)
        scores = torch.where(ends, cand.scores / self._lp(step + 1), NEG_INF)
        parents = cand.parents.view(self.batch, -1)
        tokens = self.tokens.gather(1, parents.unsqueeze(-1).expand(-1, -1, self.cfg.max_len))
        tokens[:, :, step] = EOS_ID
        rows = self.batch * self.groups  # pool rows: one per (source, group)
        self.pool.add(
            scores.view(rows, width),
            cand.scores.view(rows, width),
            tokens.view(rows, width, -1),
            torch.full((rows, width), step + 1, dtype=torch.long, device=self.device),
        )

    def _advance(self, cand: Candidates, step: int) -> Tensor:
        """Each group keeps its first ``size`` non-``<eos>`` candidates; returns the state
        rows (``[batch * beam]``) the new beams continue from."""
        width = cand.tokens.size(-1)
        rank = torch.arange(width, device=self.device)
        key = rank + width * (cand.tokens == EOS_ID).long()  # <eos> sorts last
        keep = key.argsort(dim=-1)[..., : self.size]  # [batch, groups, size]
        parents = cand.parents.gather(-1, keep).view(self.batch, self.beam)
        self.tokens = self.tokens.gather(1, parents.unsqueeze(-1).expand(-1, -1, self.cfg.max_len))
        self.tokens[:, :, step] = cand.tokens.gather(-1, keep).view(self.batch, self.beam)
        self.cum = cand.scores.gather(-1, keep).view(self.batch, self.beam)
        return (self.row_base + parents).view(-1)

    def _update_done(self, step: int) -> None:
        best_lp = max(self._lp(step + 2), self._lp(self.cfg.max_len))
        live = self.cum.view(-1, self.size).max(dim=1).values  # per (source, group)
        worst = self.pool.scores[:, -1]
        self.done |= torch.isfinite(worst) & (live / best_lp <= worst)

    def _cut_survivors(self) -> None:
        """At ``max_len`` the live hypotheses end without ``<eos>`` and join the pool."""
        max_len, rows = self.cfg.max_len, self.batch * self.groups
        cum = self.cum.view(rows, self.size)
        alive = torch.isfinite(cum) & ~self.done.unsqueeze(1)
        self.pool.add(
            torch.where(alive, cum / self._lp(max_len), NEG_INF),
            cum,
            self.tokens.view(rows, self.size, max_len),
            torch.full((rows, self.size), max_len, dtype=torch.long, device=self.device),
        )
