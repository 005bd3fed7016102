"""Decoding presets per style (the n-best choice: tests/s2s_core/test_choice.py)."""

from __future__ import annotations

import pytest

from worker.replies import decode_config


@pytest.mark.parametrize("style", ["focused", "varied", "playful"])
def test_styles(style: str) -> None:
    cfg = decode_config(style, {"max_len": 20, "beam_size": 99})
    assert cfg.max_len == 20
    assert {"focused": "beam", "varied": "beam", "playful": "sample"}[style] == cfg.strategy
    if style == "varied":
        assert cfg.diversity == "hamming"

    assert cfg.max_word_uses == 2  # no style repeats a content word three times
