"""The textbook beam search, one hypothesis at a time: slow, plain, obviously correct.

It follows the same rules as the batched search (see ``s2s_core.decoding.beam``): the top
``2k`` expansions by cumulative log-probability; ``<eos>`` among the top ``k`` finishes a
hypothesis; the first ``k`` others live on; a source stops when ``n_best`` are finished and
no live hypothesis can beat the worst of them; survivors are cut at ``max_len``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from s2s_core.decoding import DecodeConfig, length_penalty
from s2s_core.special import EOS_ID, PAD_ID, SOS_ID


def _lp(cfg: DecodeConfig, length: int) -> float:
    return float(length_penalty(length, cfg.length_penalty, cfg.length_penalty_form))


def oracle_beam(model: Any, src: list[int], cfg: DecodeConfig) -> list[tuple[list[int], float]]:
    k = cfg.beam_size
    with torch.inference_mode():
        state = model.encode(torch.tensor([src]))
        live: list[tuple[np.float32, list[int], Any]] = [(np.float32(0.0), [], state)]
        pool: list[tuple[float, list[int]]] = []
        for step in range(cfg.max_len):
            candidates = []
            for cum, tokens, st in live:
                prev = torch.tensor([tokens[-1] if tokens else SOS_ID])
                lprobs, next_state = model.decode_step(prev, st)
                for v, lp in enumerate(lprobs[0].tolist()):
                    if v in (PAD_ID, SOS_ID) or (v == EOS_ID and step < cfg.min_len):
                        continue
                    if lp != float("-inf"):
                        candidates.append(
                            (np.float32(cum + np.float32(lp)), [*tokens, v], next_state)
                        )
            candidates.sort(key=lambda c: -c[0])
            candidates = candidates[: 2 * k]
            for score, tokens, _ in candidates[:k]:
                if tokens[-1] == EOS_ID:
                    pool.append((float(score) / _lp(cfg, step + 1), tokens))
            live = [c for c in candidates if c[1][-1] != EOS_ID][:k]
            pool = sorted(pool, key=lambda p: -p[0])[: cfg.n_best]
            if step + 1 < cfg.max_len and len(pool) == cfg.n_best and live:
                reach = max(float(c[0]) for c in live) / max(
                    _lp(cfg, step + 2), _lp(cfg, cfg.max_len)
                )
                if reach <= pool[-1][0]:
                    return [(t, s) for s, t in pool]
        pool += [(float(score) / _lp(cfg, cfg.max_len), tokens) for score, tokens, _ in live]
        pool = sorted(pool, key=lambda p: -p[0])[: cfg.n_best]
    return [(t, s) for s, t in pool]
