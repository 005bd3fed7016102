"""Candidate selection for one beam-search step, fairseq ``search.py`` style.

Each ``Search.step`` sees the next-token log-probabilities of every live hypothesis and the
hypotheses' cumulative log-probabilities, and proposes ``2 * group_beam`` candidates per
source and group, best first by its *steering* score. Candidates carry the model's own
cumulative log-probability: diversity penalties only change which are proposed and in what
order, never the scores that are reported.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from s2s_core.decoding.config import DecodeConfig


class Candidates(NamedTuple):
    scores: Tensor  # model cumulative log-prob: [batch, groups, 2 * group_beam]
    tokens: Tensor  # next token: [batch, groups, 2 * group_beam]
    parents: Tensor  # beam index (0 .. beam-1) the candidate extends: same shape


class Search:
    """Plain beam search: the top ``2k`` of all ``k * vocab`` expansions."""

    groups = 1

    def step(self, lprobs: Tensor, cum: Tensor) -> Candidates:
        """``lprobs`` [batch, beam, vocab], ``cum`` [batch, beam] → ``Candidates``."""
        batch, beam, vocab = lprobs.shape
        expanded = (cum.unsqueeze(-1) + lprobs).view(batch, -1)  # [batch, beam * vocab]
        scores, flat = expanded.topk(min(2 * beam, beam * vocab), dim=-1)
        return Candidates(
            scores.unsqueeze(1),
            (flat % vocab).unsqueeze(1),
            torch.div(flat, vocab, rounding_mode="floor").unsqueeze(1),
        )


class SiblingSearch(Search):
    """Li, Monroe & Jurafsky (2016): an expansion ranked r-th (from 0) among its parent's
    expansions is steered by ``score - gamma * r``, so siblings crowd the beam less."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def step(self, lprobs: Tensor, cum: Tensor) -> Candidates:
        batch, beam, vocab = lprobs.shape
        width = min(2 * beam, vocab)
        # Penalties grow with rank, so only each parent's top `width` can be chosen.
        top_lp, top_tok = lprobs.topk(width, dim=-1)  # [batch, beam, width]
        scores = cum.unsqueeze(-1) + top_lp
        ranks = torch.arange(width, device=lprobs.device, dtype=scores.dtype)
        steer = (scores - self.gamma * ranks).view(batch, -1)  # [batch, beam * width]
        _, flat = steer.topk(min(2 * beam, beam * width), dim=-1)
        parents = torch.div(flat, width, rounding_mode="floor")
        return Candidates(
            scores.view(batch, -1).gather(1, flat).unsqueeze(1),
            top_tok.view(batch, -1).gather(1, flat).unsqueeze(1),
            parents.unsqueeze(1),
        )


class HammingSearch(Search):
    """Vijayakumar et al., "Diverse Beam Search": the beam is split into groups searched in
    turn; at each step group g's log-probabilities are lowered by ``lambda`` times the number
    of times each token was picked at this step by groups 0..g-1 (Hamming diversity)."""

    def __init__(self, groups: int, strength: float) -> None:
        self.groups = groups
        self.strength = strength
        self.plain = Search()

    def step(self, lprobs: Tensor, cum: Tensor) -> Candidates:
        batch, beam, vocab = lprobs.shape
        size = beam // self.groups
        picked = torch.zeros(batch, vocab, device=lprobs.device, dtype=lprobs.dtype)
        out = []
        for g in range(self.groups):  # groups are sequential by definition
            group = slice(g * size, (g + 1) * size)
            steered = lprobs[:, group] - self.strength * picked.unsqueeze(1)
            cand = self.plain.step(steered, cum[:, group])
            parents = cand.parents + g * size
            # Model scores: undo the penalty on the chosen expansions.
            penalty = self.strength * picked.gather(1, cand.tokens[:, 0])
            out.append(Candidates(cand.scores + penalty.unsqueeze(1), cand.tokens, parents))
            chosen = cand.tokens[:, 0, :size]  # the group's beam-width picks this step
            picked.scatter_add_(1, chosen, torch.ones_like(chosen, dtype=picked.dtype))
        return Candidates(*(torch.cat(parts, dim=1) for parts in zip(*out, strict=True)))


def make_search(cfg: DecodeConfig) -> Search:
    if cfg.diversity == "sibling":
        return SiblingSearch(cfg.diversity_strength)
    if cfg.diversity == "hamming":
        return HammingSearch(cfg.groups, cfg.diversity_strength)
    return Search()
