"""Decodable models for decoding tests: next-token probabilities written by hand."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from s2s_core.special import SOS_ID

Table = dict[tuple[int, ...], dict[int, float]]


class TableModel:
    """``table[prefix]`` gives the probabilities of chosen next tokens after ``prefix``
    (generated tokens, no ``<sos>``); the remaining mass is shared evenly by every other
    token. Prefixes not in the table use ``default``. The state is each row's history."""

    def __init__(self, table: Table, vocab: int = 8, default: dict[int, float] | None = None):
        self.table, self.default = table, default or {}
        self.src_vocab_size = self.tgt_vocab_size = vocab

    def encode(self, src: Tensor) -> Tensor:
        return torch.zeros(src.size(0), 0, dtype=torch.long)  # history: [rows, steps]

    def decode_step(self, tokens: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        history = torch.cat([history, tokens.unsqueeze(1)], dim=1)
        rows = [self.log_probs(tuple(t for t in row.tolist() if t != SOS_ID)) for row in history]
        return torch.stack(rows), history

    def reorder_state(self, history: Tensor, index: Tensor, within_sources: bool = False) -> Tensor:
        return history.index_select(0, index)

    def log_probs(self, prefix: tuple[int, ...]) -> Tensor:
        chosen = self.table.get(prefix, self.default)
        rest = (1.0 - sum(chosen.values())) / (self.tgt_vocab_size - len(chosen))
        probs = [chosen.get(v, rest) for v in range(self.tgt_vocab_size)]
        return torch.tensor([math.log(p) if p > 0 else float("-inf") for p in probs])

    def sequence_log_prob(self, tokens: list[int]) -> float:
        return sum(float(self.log_probs(tuple(tokens[:i]))[t]) for i, t in enumerate(tokens))
