"""Choosing among the n-best, and decoding presets per style."""

from __future__ import annotations

import pytest

from s2s_core import Hypothesis, Tokenizer
from s2s_core.special import EOS_ID, UNK_ID
from worker.replies import FALLBACK, choose, decode_config


def hyp(tokenizer: Tokenizer, text: str, score: float, unk: int = 0) -> Hypothesis:
    return Hypothesis([*tokenizer.encode(text), *[UNK_ID] * unk, EOS_ID], score, score)


def test_choice_skips_empty_unk_heavy_and_repeated(tiny_tokenizer: Tokenizer) -> None:
    hyps = [
        Hypothesis([EOS_ID], -0.1, -0.1),
        hyp(tiny_tokenizer, "hi", -0.2, unk=3),
        hyp(tiny_tokenizer, "how are you", -0.3),
        hyp(tiny_tokenizer, "fine thanks", -0.4),
    ]
    choice = choose(hyps, tiny_tokenizer, recent_bot=["How  are YOU"])
    assert choice.text == "fine thanks" and choice.index == 3
    assert [c["score"] for c in choice.candidates] == [-0.1, -0.2, -0.3, -0.4]


def test_choice_falls_back_when_nothing_is_usable(tiny_tokenizer: Tokenizer) -> None:
    choice = choose([Hypothesis([EOS_ID], -0.1, -0.1)], tiny_tokenizer, [])
    assert choice.text == FALLBACK and choice.index == -1


@pytest.mark.parametrize("style", ["focused", "varied", "playful"])
def test_styles(style: str) -> None:
    cfg = decode_config(style, {"max_len": 20, "beam_size": 99})
    assert cfg.max_len == 20
    assert {"focused": "beam", "varied": "beam", "playful": "sample"}[style] == cfg.strategy
    if style == "varied":
        assert cfg.diversity == "hamming"
