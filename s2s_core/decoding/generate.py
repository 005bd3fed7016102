"""``generate``: the one decoding entry point the worker, the CLI and the replay tool call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

import torch
from torch import Tensor

from s2s_core.data import pad_batch
from s2s_core.decoding.beam import BeamSearch, Pool
from s2s_core.decoding.config import DecodeConfig, Hypothesis
from s2s_core.decoding.constraints import Rules, ngram_windows
from s2s_core.decoding.sampling import decode_rows, rows_to_pool
from s2s_core.decoding.words import WordTable
from s2s_core.special import PAD_ID


class Decodable(Protocol):
    """What decoding needs of a model (``Seq2Seq`` has it; tests use hand-written fakes)."""

    @property
    def src_vocab_size(self) -> int: ...
    @property
    def tgt_vocab_size(self) -> int: ...
    def encode(self, src: Tensor) -> Any: ...
    def decode_step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...
    def reorder_state(self, state: Any, index: Tensor, within_sources: bool = False) -> Any: ...


def generate(
    model: Decodable,
    src: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    words: WordTable | None = None,
) -> list[list[Hypothesis]]:
    """Decodes each source (token ids, no ``<sos>``/``<eos>``) into its n-best list, best
    first. All sources decode together as one batch; see ``DecodeConfig`` for the options
    and ``Hypothesis`` for what tokens, score and log_prob mean. ``words`` (the target
    tokenizer's ``WordTable``) is needed by ``cfg.max_word_uses`` and unused otherwise."""
    _check_sources(src, model.src_vocab_size)
    if cfg.max_word_uses and words is None:
        raise ValueError("max_word_uses needs the tokenizer's WordTable (words=...)")
    if cfg.max_word_uses and words is not None and words.word.numel() != model.tgt_vocab_size:
        raise ValueError(
            f"WordTable covers {words.word.numel()} tokens, the model's vocabulary "
            f"{model.tgt_vocab_size}"
        )
    if cfg.strategy == "beam" and cfg.beam_size > model.tgt_vocab_size:
        raise ValueError(
            f"beam_size ({cfg.beam_size}) exceeds the vocabulary ({model.tgt_vocab_size})"
        )
    device = _device(model)
    src_tensor = pad_batch(src).to(device)
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.inference_mode():
            rules = Rules(cfg, None, words.to(device) if cfg.max_word_uses and words else None)
            pool = _decode(model, src_tensor, rules, device)
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return _hypotheses(pool)


def _check_sources(src: Sequence[Sequence[int]], vocab: int) -> None:
    if not isinstance(src, Sequence) or isinstance(src, str) or len(src) == 0:
        raise ValueError("src must be a non-empty list of token-id lists")
    for i, seq in enumerate(src):
        if isinstance(seq, str) or not isinstance(seq, Sequence) or len(seq) == 0:
            raise ValueError(f"src[{i}] must be a non-empty list of token ids")
        for token in seq:
            if not isinstance(token, int) or isinstance(token, bool):
                raise ValueError(f"src[{i}] holds a non-integer id {token!r}")
            if not PAD_ID < token < vocab:
                raise ValueError(f"src[{i}] holds id {token} outside 1..{vocab - 1}")


def _device(model: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device(getattr(model, "device", "cpu"))


def _decode(model: Any, src: Tensor, rules: Rules, device: torch.device) -> Pool:
    cfg, batch = rules.cfg, src.size(0)
    per_source = (
        cfg.beam_size if cfg.strategy == "beam" else (cfg.n_best if cfg.strategy == "sample" else 1)
    )
    rows_of_source = torch.arange(batch * per_source, device=device) // per_source
    if cfg.block_source_ngram:
        windows = ngram_windows(src, cfg.block_source_ngram).index_select(0, rows_of_source)
        rules = replace(rules, source_windows=windows)
    state = model.encode(src)
    if cfg.strategy == "beam":
        return BeamSearch(model, cfg, batch, device).run(state, rules)
    state = model.reorder_state(state, rows_of_source)
    generator = None
    if cfg.strategy == "sample":
        generator = torch.Generator(device=device)
        generator.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    tokens, lengths, log_probs = decode_rows(
        model, state, batch * per_source, device, rules, generator
    )
    return rows_to_pool(tokens, lengths, log_probs, cfg, per_source)


def _hypotheses(pool: Pool) -> list[list[Hypothesis]]:
    """Moves the pool to Python once: finite entries only, best first."""
    scores, log_probs = pool.scores.tolist(), pool.log_probs.tolist()
    tokens, lengths = pool.tokens.tolist(), pool.lengths.tolist()
    out = []
    for b in range(len(scores)):
        out.append(
            [
                Hypothesis(tokens[b][i][: lengths[b][i]], scores[b][i], log_probs[b][i])
                for i in range(len(scores[b]))
                if scores[b][i] != float("-inf")
            ]
        )
    return out
