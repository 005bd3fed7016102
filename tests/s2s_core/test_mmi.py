"""MMI reranking: backward scores are the backward model's teacher-forced likelihood, and
the order follows the documented combination."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2s_core import CheckpointError, Hypothesis, Tokenizer, save_checkpoint
from s2s_core.mmi import (
    Backward,
    MMIConfig,
    backward_scores,
    backward_source,
    load_backward,
    mmi_rerank,
)
from s2s_core.special import EOS_ID, SOS_ID
from tests.conftest import tiny_model


def all_tokens(model: torch.nn.Module, **settings: object) -> Backward:
    """``model`` as a backward model that scores every message token (no content filter)."""
    cfg = MMIConfig(**{"content_only": False, **settings})  # type: ignore[arg-type]
    return Backward(model, cfg, torch.zeros(40, dtype=torch.bool))


@torch.no_grad()
def oracle_backward(model: torch.nn.Module, reply: list[int], message: list[int]) -> float:
    """log p(message | reply) / (len(message) + 1), one pair at a time, no padding."""
    src = torch.tensor([backward_source(reply, 64)])
    tgt = torch.tensor([[SOS_ID, *message, EOS_ID]])
    logp = torch.log_softmax(model(src, tgt), dim=-1)[0]
    gold = tgt[0, 1:]
    return float(logp[torch.arange(len(gold)), gold].sum()) / len(gold)


def test_batched_backward_scores_match_one_at_a_time() -> None:
    model = tiny_model(40, attention="luong")
    pairs = [([7, 8, 9, EOS_ID], [10, 11]), ([12, EOS_ID], [13, 14, 15, 16]), ([EOS_ID], [7])]
    got = backward_scores(all_tokens(model), pairs)
    for score, (reply, message) in zip(got, pairs, strict=True):
        assert score == pytest.approx(oracle_backward(model, reply, message), abs=1e-5)


def test_rerank_orders_by_the_documented_score() -> None:
    model = tiny_model(40, attention="luong")
    hyps = [Hypothesis([7, 8, EOS_ID], -1.0, -1.5), Hypothesis([9, 10, 11, EOS_ID], -2.0, -2.8)]
    (ranked,) = mmi_rerank(all_tokens(model, weight=0.4, length_bonus=0.1), [[12, 13]], [hyps])
    back = {tuple(r.hypothesis.tokens): r.backward for r in ranked}
    for r in ranked:
        length = len(r.hypothesis.tokens)
        assert r.forward == pytest.approx(r.hypothesis.log_prob / length)
        expected = 0.6 * r.forward + 0.4 * back[tuple(r.hypothesis.tokens)] + 0.1 * length
        assert r.score == pytest.approx(expected)
    assert ranked[0].score >= ranked[1].score


def test_weight_zero_keeps_the_forward_per_token_order() -> None:
    model = tiny_model(40, attention="luong")
    hyps = [Hypothesis([7, EOS_ID], -3.0, -3.0), Hypothesis([8, 9, 10, EOS_ID], -4.0, -4.0)]
    (ranked,) = mmi_rerank(all_tokens(model, weight=0.0), [[12]], [hyps])
    assert [r.hypothesis.tokens for r in ranked] == [[8, 9, 10, EOS_ID], [7, EOS_ID]]


def test_a_strong_backward_preference_flips_the_order() -> None:
    """A reply from which the message is far more recoverable wins at weight 1."""
    model = tiny_model(40, attention="luong")
    hyps = [Hypothesis([7, EOS_ID], -0.1, -0.1), Hypothesis([8, EOS_ID], -5.0, -5.0)]
    scores = backward_scores(all_tokens(model), [([7, EOS_ID], [12]), ([8, EOS_ID], [12])])
    (ranked,) = mmi_rerank(all_tokens(model, weight=1.0), [[12]], [hyps])
    best = 0 if scores[0] >= scores[1] else 1
    assert ranked[0].hypothesis is hyps[best]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="messages"):
        mmi_rerank(all_tokens(tiny_model(40)), [[1], [2]], [[]])
    with pytest.raises(ValueError, match="weight"):
        MMIConfig(weight=1.5)
    with pytest.raises(ValueError, match="content_only"):
        MMIConfig(content_only="yes")  # type: ignore[arg-type]


def test_a_checkpoint_carries_its_backward_model(
    checkpoint_dir: Path, tiny_tokenizer: Tokenizer
) -> None:
    assert load_backward(checkpoint_dir, tiny_tokenizer, {}) is None
    backward = tiny_model(tiny_tokenizer.vocab_size, attention="luong", n_layers=1)
    meta = {"data": {"max_src_len": 48, "max_tgt_len": 20}}
    save_checkpoint(checkpoint_dir / "backward", backward, tiny_tokenizer, meta)
    tuned = {"mmi": {"weight": 0.3, "tuned_on": "valid[:200]"}}
    loaded = load_backward(checkpoint_dir, tiny_tokenizer, tuned)
    assert loaded is not None
    assert loaded.cfg == MMIConfig(weight=0.3, max_src_len=48, max_tgt_len=20)
    assert loaded.content.dtype == torch.bool
    assert loaded.content.numel() == tiny_tokenizer.vocab_size
    with pytest.raises(CheckpointError, match="mmi"):
        load_backward(checkpoint_dir, tiny_tokenizer, {"mmi": {"weight": "lots"}})


def test_a_backward_model_with_another_tokenizer_is_refused(
    checkpoint_dir: Path, tiny_tokenizer: Tokenizer
) -> None:
    other = Tokenizer.train(["completely different words here"] * 5, vocab_size=300)
    backward = tiny_model(other.vocab_size, n_layers=1)
    save_checkpoint(checkpoint_dir / "backward", backward, other, {})
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_backward(checkpoint_dir, tiny_tokenizer, {})


@torch.no_grad()
def test_target_log_probs_are_the_forward_pass_at_the_gold_tokens() -> None:
    model = tiny_model(40, attention="luong", tie_embeddings=True, emb_dim=24)
    src = torch.tensor([[7, 8, 9, 0], [10, 11, 0, 0]])
    tgt = torch.tensor([[SOS_ID, 12, 13, 14, EOS_ID], [SOS_ID, 15, EOS_ID, 0, 0]])
    picked, mask = model.target_log_probs(src, tgt)
    full = torch.log_softmax(model(src, tgt), dim=-1)  # full: [2, 4, vocab]
    expected = full.gather(-1, tgt[:, 1:].unsqueeze(-1)).squeeze(-1)[mask]
    assert mask.sum() == 6 and torch.allclose(picked, expected, atol=1e-5)


@torch.no_grad()
def test_content_only_scores_the_content_words_of_the_message() -> None:
    """Only the flagged tokens count; a message without any falls back to all its tokens
    plus <eos>; chunking by length changes no score."""
    model = tiny_model(40, attention="luong")
    content = torch.zeros(40, dtype=torch.bool)
    content[[11, 13]] = True
    backward = Backward(model, MMIConfig(), content)
    pairs = [([7, 8, EOS_ID], [10, 11, 12, 13]), ([9, EOS_ID], [10, 12]), ([8, EOS_ID], [11])]
    got = backward_scores(backward, pairs)
    for (reply, message), score in zip(pairs, got, strict=True):
        src = torch.tensor([backward_source(reply, 64)])
        tgt = torch.tensor([[SOS_ID, *message, EOS_ID]])
        logp = torch.log_softmax(model(src, tgt), dim=-1)[0]
        gold = tgt[0, 1:]
        per_token = logp[torch.arange(len(gold)), gold]
        keep = content[gold] if content[gold].any() else torch.ones(len(gold), dtype=torch.bool)
        assert score == pytest.approx(float(per_token[keep].mean()), abs=1e-5)
    import s2s_core.mmi as mmi

    chunked = mmi.SCORE_CHUNK
    try:
        mmi.SCORE_CHUNK = 1
        assert backward_scores(backward, pairs) == pytest.approx(got, abs=1e-6)
    finally:
        mmi.SCORE_CHUNK = chunked


@torch.no_grad()
def test_target_log_probs_at_chosen_positions_match_the_full_pass() -> None:
    model = tiny_model(40, attention="luong", tie_embeddings=True, emb_dim=24)
    src = torch.tensor([[7, 8, 9, 0], [10, 11, 0, 0]])
    tgt = torch.tensor([[SOS_ID, 12, 13, 14, EOS_ID], [SOS_ID, 15, EOS_ID, 0, 0]])
    scored = torch.tensor([[False, True, False, True], [True, False, True, True]])
    picked, mask = model.target_log_probs(src, tgt, scored)
    full = torch.log_softmax(model(src, tgt), dim=-1)
    expected = full.gather(-1, tgt[:, 1:].unsqueeze(-1)).squeeze(-1)[mask]
    assert mask.tolist() == [[False, True, False, True], [True, False, False, False]]
    assert torch.allclose(picked, expected, atol=1e-5)
