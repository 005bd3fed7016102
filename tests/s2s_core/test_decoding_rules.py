"""Decoding rules pinned with hand-written next-token probabilities (fairseq-style)."""

from __future__ import annotations

import math

import pytest

from s2s_core import DecodeConfig, generate
from s2s_core.special import EOS_ID
from tests.utils.fake_models import TableModel

A, B, C, D = 4, 5, 6, 7
EPS = 1e-4


def test_length_penalty_flips_the_winner() -> None:
    model = TableModel(
        {(): {EOS_ID: 0.55, A: 0.45 - 5 * EPS}, (A,): {B: 0.8}, (A, B): {EOS_ID: 0.8}}
    )
    short = generate(model, [[A]], DecodeConfig(beam_size=2, max_len=5, length_penalty=0.0))
    long = generate(model, [[A]], DecodeConfig(beam_size=2, max_len=5, length_penalty=1.0))
    assert short[0][0].tokens == [EOS_ID]
    assert short[0][0].score == pytest.approx(math.log(0.55), abs=1e-6)
    assert long[0][0].tokens == [A, B, EOS_ID]
    expected = model.sequence_log_prob([A, B, EOS_ID])
    assert long[0][0].score == pytest.approx(expected / 3, abs=1e-6)
    assert long[0][0].log_prob == pytest.approx(expected, abs=1e-6)


def test_gnmt_penalty_form() -> None:
    model = TableModel(
        {(): {EOS_ID: 0.55, A: 0.45 - 5 * EPS}, (A,): {B: 0.8}, (A, B): {EOS_ID: 0.8}}
    )
    cfg = DecodeConfig(beam_size=2, max_len=5, length_penalty=1.0, length_penalty_form="gnmt")
    hyp = generate(model, [[A]], cfg)[0][0]
    lp = {1: 1.0, 3: 8 / 6}[len(hyp.tokens)]
    assert hyp.score == pytest.approx(model.sequence_log_prob(hyp.tokens) / lp, abs=1e-6)


def test_search_waits_for_a_hypothesis_normalization_can_still_lift() -> None:
    """[eos] finishes first; "a b c <eos>" is far less likely but wins per token. A stopping
    rule that forgot the longer lengths a live hypothesis may reach would stop at [eos]."""
    model = TableModel(
        {
            (): {EOS_ID: 0.7, A: 0.25},
            (A,): {B: 0.99},
            (A, B): {C: 0.99},
            (A, B, C): {EOS_ID: 0.99},
        }
    )
    hyp = generate(model, [[A]], DecodeConfig(beam_size=2, max_len=4, length_penalty=1.0))[0][0]
    assert hyp.tokens == [A, B, C, EOS_ID]
    assert hyp.score == pytest.approx(model.sequence_log_prob(hyp.tokens) / 4, abs=1e-6)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_max_len_cuts_without_eos(strategy: str) -> None:
    model = TableModel({}, default={A: 0.9, EOS_ID: 0.05})
    cfg = DecodeConfig(strategy=strategy, beam_size=2, max_len=3, length_penalty=1.0)
    hyp = generate(model, [[B]], cfg)[0][0]
    assert hyp.tokens == [A, A, A]
    assert hyp.score == pytest.approx(3 * math.log(0.9) / 3, abs=1e-6)


def test_min_len_blocks_eos() -> None:
    model = TableModel({}, default={EOS_ID: 0.9, A: 0.05})
    for strategy in ("greedy", "beam", "sample"):
        cfg = DecodeConfig(strategy=strategy, min_len=2, max_len=6, seed=0)
        hyp = generate(model, [[B]], cfg)[0][0]
        assert hyp.tokens[-1] == EOS_ID and len(hyp.tokens) == 3, strategy


def test_hamming_groups_differ_where_plain_beam_does_not() -> None:
    model = TableModel(
        {(): {A: 0.6, B: 0.3}, (A,): {C: 0.5, D: 0.45}, (B,): {C: 0.8}},
        default={EOS_ID: 0.99},
    )
    plain = generate(model, [[A]], DecodeConfig(beam_size=2, n_best=2, max_len=3, length_penalty=0))
    assert [h.tokens for h in plain[0]] == [[A, C, EOS_ID], [A, D, EOS_ID]]
    cfg = DecodeConfig(
        beam_size=2,
        n_best=2,
        max_len=3,
        length_penalty=0,
        diversity="hamming",
        num_groups=2,
        diversity_strength=2.0,
    )
    diverse = generate(model, [[A]], cfg)
    assert [h.tokens for h in diverse[0]] == [[A, C, EOS_ID], [B, C, EOS_ID]]
    # The reported score is the model's own, without the penalty that steered the search.
    assert diverse[0][1].score == pytest.approx(model.sequence_log_prob([B, C, EOS_ID]), abs=1e-6)


def test_sibling_rank_penalty_spreads_parents() -> None:
    """Plain beam keeps two children of "a"; the rank penalty makes "b" (a's sibling's
    best child outranks a's second child) win the second slot."""
    model = TableModel(
        {(): {A: 0.6, B: 0.35}, (A,): {C: 0.5, D: 0.45}, (B,): {C: 0.6}},
        default={EOS_ID: 0.99},
    )
    plain = generate(model, [[A]], DecodeConfig(beam_size=2, n_best=2, max_len=3, length_penalty=0))
    assert [h.tokens[:2] for h in plain[0]] == [[A, C], [A, D]]
    cfg = DecodeConfig(
        beam_size=2,
        n_best=2,
        max_len=3,
        length_penalty=0,
        diversity="sibling",
        diversity_strength=1.0,
    )
    diverse = generate(model, [[A]], cfg)
    assert [h.tokens[:2] for h in diverse[0]] == [[A, C], [B, C]]
    assert diverse[0][1].score == pytest.approx(model.sequence_log_prob([B, C, EOS_ID]), abs=1e-6)


def test_no_repeat_ngram() -> None:
    model = TableModel({}, default={A: 0.5, B: 0.3, EOS_ID: 0.01})
    for strategy in ("greedy", "beam"):
        hyp = generate(model, [[C]], DecodeConfig(strategy=strategy, max_len=6, no_repeat_ngram=2))
        bigrams = list(zip(hyp[0][0].tokens, hyp[0][0].tokens[1:], strict=False))
        assert len(bigrams) == len(set(bigrams)), strategy
    unigram = generate(model, [[C]], DecodeConfig(strategy="greedy", max_len=3, no_repeat_ngram=1))
    assert unigram[0][0].tokens == [A, B, 3]  # then <unk>, the best token not yet used


def test_block_source_ngram_stops_parroting() -> None:
    model = TableModel({(): {A: 0.9}, (A,): {B: 0.9}, (A, B): {EOS_ID: 0.9}}, default={EOS_ID: 0.5})
    parrot = generate(model, [[A, B]], DecodeConfig(strategy="greedy", max_len=4))
    assert parrot[0][0].tokens == [A, B, EOS_ID]
    blocked = generate(
        model, [[A, B]], DecodeConfig(strategy="greedy", max_len=4, block_source_ngram=2)
    )
    assert blocked[0][0].tokens[:2] != [A, B]
    other_source = generate(
        model, [[A, C]], DecodeConfig(strategy="greedy", max_len=4, block_source_ngram=2)
    )
    assert other_source[0][0].tokens == [A, B, EOS_ID]


def test_same_seed_same_sample() -> None:
    model = TableModel({}, default={EOS_ID: 0.1})
    cfg = DecodeConfig(strategy="sample", n_best=4, max_len=8, seed=123)
    first, second = generate(model, [[A], [B]], cfg), generate(model, [[A], [B]], cfg)
    assert [[h.tokens for h in hs] for hs in first] == [[h.tokens for h in hs] for hs in second]
    other = generate(
        model, [[A], [B]], DecodeConfig(strategy="sample", n_best=4, max_len=8, seed=7)
    )
    assert [[h.tokens for h in hs] for hs in other] != [[h.tokens for h in hs] for hs in first]


def test_top_k_one_sampling_is_greedy() -> None:
    model = TableModel({(): {B: 0.4}, (B,): {C: 0.5}}, default={EOS_ID: 0.6})
    sample = generate(model, [[A]], DecodeConfig(strategy="sample", top_k=1, max_len=5, seed=3))
    greedy = generate(model, [[A]], DecodeConfig(strategy="greedy", max_len=5))
    assert sample[0][0].tokens == greedy[0][0].tokens == [B, C, EOS_ID]


def test_top_p_keeps_only_the_nucleus() -> None:
    model = TableModel({(): {B: 0.7, C: 0.25}}, default={EOS_ID: 0.99})
    cfg = DecodeConfig(strategy="sample", top_p=0.9, n_best=50, max_len=2, seed=0)
    firsts = {h.tokens[0] for h in generate(model, [[A]], cfg)[0]}
    assert firsts == {B, C}


def test_merging_group_pools_keeps_a_sequence_once_best_first() -> None:
    """Two Hamming groups that finished the same reply contribute it once (the better
    score wins), and the merged n-best is ordered by score across groups."""
    import torch

    from s2s_core.decoding.beam import NEG_INF, Pool

    pool = Pool.empty(batch=2, n_best=2, max_len=4, device=torch.device("cpu"))  # 1 source × 2
    same = torch.tensor([A, C, EOS_ID, 0])
    pool.add(
        torch.tensor([[-1.0, -3.0], [-2.0, -2.5]]),  # group 0: same, other; group 1: same, third
        torch.tensor([[-1.0, -3.0], [-2.0, -2.5]]),
        torch.stack(
            [
                torch.stack([same, torch.tensor([B, EOS_ID, 0, 0])]),
                torch.stack([same, torch.tensor([D, EOS_ID, 0, 0])]),
            ]
        ),
        torch.tensor([[3, 2], [3, 2]]),
    )
    merged = pool.merge_groups(groups=2, n_best=3)
    tokens = [merged.tokens[0, i, : merged.lengths[0, i]].tolist() for i in range(3)]
    assert tokens == [[A, C, EOS_ID], [D, EOS_ID], [B, EOS_ID]]
    assert merged.scores[0].tolist() == [-1.0, -2.5, -3.0]
    assert NEG_INF not in merged.scores[0].tolist()


def test_hamming_with_several_beams_per_group_returns_distinct_finished_replies() -> None:
    """The production `varied` shape (6 beams in 3 groups, n-best 6) on a small model: every
    returned reply is distinct and finished, and scores are the model's own."""
    model = TableModel(
        {
            (): {A: 0.4, B: 0.3, C: 0.2},
            (A,): {C: 0.5, D: 0.4},
            (B,): {C: 0.6, D: 0.3},
            (C,): {D: 0.7, A: 0.2},
        },
        default={EOS_ID: 0.95},
    )
    cfg = DecodeConfig(
        beam_size=6, n_best=6, max_len=4, length_penalty=0, diversity="hamming", num_groups=3
    )
    hyps = generate(model, [[A]], cfg)[0]
    texts = [tuple(h.tokens) for h in hyps]
    assert len(texts) == len(set(texts)) >= 3
    for hyp in hyps:
        assert hyp.tokens[-1] == EOS_ID
        assert hyp.score == pytest.approx(model.sequence_log_prob(hyp.tokens), abs=1e-6)
