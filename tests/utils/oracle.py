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


def oracle_hamming(model: Any, src: list[int], cfg: DecodeConfig) -> list[tuple[list[int], float]]:
    """Diverse beam search (Vijayakumar et al.), one hypothesis at a time, with the batched
    search's rules (``s2s_core.decoding.beam`` / ``search``): the beam splits into ``groups``
    of ``size`` beams, each group starting from one hypothesis; at each step the groups are
    searched in turn, group g steered by ``strength`` times how often each token was among
    the top ``size`` picks of groups 0..g-1 at this step, with scores kept as the model's
    own. Each group has its own pool of ``ceil(n_best / groups)`` and its own stopping
    test; a stopped group still steers the later ones. The pools merge, a sequence that
    several groups reached counted once, into the ``n_best`` best."""
    groups, size = cfg.groups, cfg.beam_size // cfg.groups
    per_group = -(-cfg.n_best // groups)
    strength = np.float32(cfg.diversity_strength)
    with torch.inference_mode():
        state = model.encode(torch.tensor([src]))
        live: list[list[tuple[np.float32, list[int], Any]]] = [
            [(np.float32(0.0), [], state)] for _ in range(groups)
        ]
        pools: list[list[tuple[float, list[int]]]] = [[] for _ in range(groups)]
        done = [False] * groups
        for step in range(cfg.max_len):
            picked: dict[int, int] = {}
            for g in range(groups):
                candidates = []
                for cum, tokens, st in live[g]:
                    prev = torch.tensor([tokens[-1] if tokens else SOS_ID])
                    lprobs, next_state = model.decode_step(prev, st)
                    for v, lp in enumerate(lprobs[0].tolist()):
                        if v in (PAD_ID, SOS_ID) or (v == EOS_ID and step < cfg.min_len):
                            continue
                        penalty = strength * np.float32(picked.get(v, 0))
                        steered = cum + (np.float32(lp) - penalty)
                        candidates.append((steered, steered + penalty, [*tokens, v], next_state))
                candidates.sort(key=lambda c: -c[0])
                candidates = candidates[: 2 * size]
                for _, score, tokens, _ in candidates[:size]:
                    picked[tokens[-1]] = picked.get(tokens[-1], 0) + 1
                    if tokens[-1] == EOS_ID and not done[g]:
                        pools[g].append((float(score) / _lp(cfg, step + 1), tokens))
                pools[g] = sorted(pools[g], key=lambda p: -p[0])[:per_group]
                live[g] = [(s, t, st) for _, s, t, st in candidates if t[-1] != EOS_ID][:size]
            if step + 1 < cfg.max_len:
                reach = max(_lp(cfg, step + 2), _lp(cfg, cfg.max_len))
                for g in range(groups):
                    best = max((float(c[0]) for c in live[g]), default=float("-inf"))
                    full = len(pools[g]) == per_group
                    done[g] = done[g] or (full and best / reach <= pools[g][-1][0])
        else:
            for g in range(groups):
                if not done[g]:
                    pools[g] += [(float(s) / _lp(cfg, cfg.max_len), t) for s, t, _ in live[g]]
                    pools[g] = sorted(pools[g], key=lambda p: -p[0])[:per_group]
    merged: dict[tuple[int, ...], float] = {}
    for pool in pools:
        for score, tokens in pool:
            merged.setdefault(tuple(tokens), score)
    best_first = sorted(merged.items(), key=lambda item: -item[1])[: cfg.n_best]
    return [(list(tokens), score) for tokens, score in best_first]
