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


def test_one_style_list_serves_every_part() -> None:
    """The bot's buttons, the payload schema, the CLI and the worker's presets all read
    s2s_contract.styles."""
    from bot.buttons import style_buttons
    from s2s_cli.options import STYLES as CLI_STYLES
    from s2s_contract.styles import DESCRIPTIONS, Style
    from s2s_contract.tasks import ReplyRequest
    from worker.replies import STYLES

    assert set(STYLES) == set(DESCRIPTIONS) == set(CLI_STYLES) == set(Style)
    buttons = [b.callback_data for b in style_buttons("varied").inline_keyboard[0]]
    assert buttons == [f"style:{s.value}" for s in Style]
    with pytest.raises(ValueError, match="focused, varied, playful"):
        decode_config("bogus")
    with pytest.raises(ValueError):
        ReplyRequest.model_validate(
            {"chat_id": 1, "user_id": 1, "message_id": 1, "text": "hi", "style": "bogus"}
        )
