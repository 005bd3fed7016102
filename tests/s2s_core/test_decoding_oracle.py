"""Batched decoding against the per-hypothesis oracle and the model's own likelihood."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from s2s_core import DecodeConfig, ModelConfig, Seq2Seq, generate
from s2s_core.decoding import length_penalty
from s2s_core.special import EOS_ID, SOS_ID
from tests.utils.oracle import oracle_beam, oracle_hamming


def random_model(seed: int, vocab: int = 12, eos_bias: float = 1.5, **kw: object) -> Seq2Seq:
    torch.manual_seed(seed)
    options = {"emb_dim": 8, "hidden_dim": 8, "n_layers": 1, "dropout": 0.0, **kw}
    model = Seq2Seq(ModelConfig(vocab, vocab, **options)).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        model.decoder.out.bias[EOS_ID] += eos_bias  # finish some hypotheses early
    return model


def random_sources(rng: random.Random, n: int, vocab: int) -> list[list[int]]:
    return [[rng.randrange(4, vocab) for _ in range(rng.randint(1, 6))] for _ in range(n)]


def teacher_forced_log_prob(model: Seq2Seq, src: list[int], tokens: list[int]) -> float:
    with torch.no_grad():
        tgt = torch.tensor([[SOS_ID, *tokens]])
        logits = model(torch.tensor([src]), tgt)
        lprobs = logits.float().log_softmax(-1)[0]
        return float(lprobs.gather(1, tgt[0, 1:].unsqueeze(1)).sum())


@pytest.mark.parametrize("seed", range(40))
def test_batched_beam_matches_oracle(seed: int) -> None:
    rng = random.Random(seed)
    model = random_model(
        seed,
        eos_bias=rng.choice([0.0, 1.0, 2.0, 3.0]),
        attention=rng.choice([None, "luong"]),
        cell=rng.choice(["lstm", "gru"]),
    )
    beam = rng.randint(1, 5)
    cfg = DecodeConfig(
        beam_size=beam,
        n_best=rng.randint(1, beam),
        max_len=rng.randint(2, 7),
        min_len=rng.choice([0, 1]),
        length_penalty=rng.choice([0.0, 0.6, 1.0, 1.5]),
        length_penalty_form=rng.choice(["power", "gnmt"]),
    )
    sources = random_sources(rng, 5, 12)
    batched = generate(model, sources, cfg)
    for src, hyps in zip(sources, batched, strict=True):
        expected = oracle_beam(model, src, cfg)
        assert [h.tokens for h in hyps] == [t for t, _ in expected], cfg
        for hyp, (_, score) in zip(hyps, expected, strict=True):
            assert hyp.score == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("seed", range(30))
def test_hamming_beam_matches_oracle_with_several_beams_per_group(seed: int) -> None:
    """Diverse beam search as production runs it (the `varied` preset: 6 beams in 3 groups,
    n-best 6) and other shapes with more than one beam per group."""
    rng = random.Random(1000 + seed)
    model = random_model(
        seed,
        eos_bias=rng.choice([0.0, 1.0, 2.0, 3.0]),
        attention=rng.choice([None, "luong"]),
        cell=rng.choice(["lstm", "gru"]),
    )
    groups, size = rng.choice([(3, 2), (2, 2), (2, 3), (3, 2)])
    cfg = DecodeConfig(
        beam_size=groups * size,
        n_best=rng.randint(1, groups * size),
        max_len=rng.randint(2, 7),
        min_len=rng.choice([0, 1]),
        length_penalty=rng.choice([0.0, 0.6, 1.0]),
        diversity="hamming",
        num_groups=groups,
        diversity_strength=rng.choice([0.5, 1.0, 2.0]),
    )
    sources = random_sources(rng, 4, 12)
    for src, hyps in zip(sources, generate(model, sources, cfg), strict=True):
        expected = oracle_hamming(model, src, cfg)
        assert [h.tokens for h in hyps] == [t for t, _ in expected], cfg
        for hyp, (_, score) in zip(hyps, expected, strict=True):
            assert hyp.score == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample", "sibling", "hamming"])
def test_scores_equal_teacher_forced_likelihood(strategy: str) -> None:
    model = random_model(3, attention="luong", bidirectional=True)
    options: dict[str, object] = {"max_len": 6, "length_penalty": 0.8}
    if strategy in ("sibling", "hamming"):
        options.update(strategy="beam", diversity=strategy, beam_size=4, n_best=4)
    elif strategy == "beam":
        options.update(strategy="beam", beam_size=4, n_best=3)
    else:
        options.update(strategy=strategy, n_best=3 if strategy == "sample" else 1, seed=5)
    cfg = DecodeConfig(**options)  # type: ignore[arg-type]
    sources = random_sources(random.Random(1), 4, 12)
    for src, hyps in zip(sources, generate(model, sources, cfg), strict=True):
        assert hyps, "every source gets at least one hypothesis"
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for hyp in hyps:
            assert hyp.tokens[-1] == EOS_ID or len(hyp.tokens) == cfg.max_len
            assert EOS_ID not in hyp.tokens[:-1]
            log_prob = teacher_forced_log_prob(model, src, hyp.tokens)
            assert hyp.log_prob == pytest.approx(log_prob, abs=1e-4)
            lp = length_penalty(len(hyp.tokens), 0.8, "power")
            assert hyp.score == pytest.approx(log_prob / lp, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_greedy_equals_beam_of_one(seed: int) -> None:
    model = random_model(seed, attention="luong")
    sources = random_sources(random.Random(seed), 8, 12)
    greedy = generate(model, sources, DecodeConfig(strategy="greedy", max_len=8, length_penalty=0))
    beam = generate(model, sources, DecodeConfig(beam_size=1, max_len=8, length_penalty=0))
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].tokens == b[0].tokens
        assert g[0].score == pytest.approx(b[0].score, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_full_beam_finds_exhaustive_optimum(alpha: float) -> None:
    """Vocabulary of 8 (4 specials + 4 words), max_len 2: a beam of 8 holds every prefix."""
    model = random_model(11, vocab=8, eos_bias=0.5)
    src = [4, 5, 6]
    words = [3, 4, 5, 6, 7]  # <unk> and the words: everything but <pad>/<sos>/<eos>
    candidates = [[EOS_ID]] + [[w, EOS_ID] for w in words]
    candidates += [list(p) for p in itertools.product(words, repeat=2)]
    best = max(
        candidates,
        key=lambda t: teacher_forced_log_prob(model, src, t) / len(t) ** alpha,
    )
    cfg = DecodeConfig(beam_size=8, max_len=2, length_penalty=alpha)
    assert generate(model, [src], cfg)[0][0].tokens == best


def test_batch_composition_does_not_change_results() -> None:
    model = random_model(4, attention="luong")
    sources = random_sources(random.Random(4), 6, 12)
    cfg = DecodeConfig(beam_size=3, n_best=2, max_len=7, diversity="sibling")
    together = generate(model, sources, cfg)
    alone = [generate(model, [s], cfg)[0] for s in sources]
    for a, b in zip(together, alone, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert all(math.isclose(x.score, y.score, abs_tol=1e-5) for x, y in zip(a, b, strict=True))
