"""Decoding presets per reply style (the n-best choice is ``s2s_core.choice``)."""

from __future__ import annotations

from typing import Any

from s2s_contract.styles import Style, parse_style
from s2s_core.decoding import DecodeConfig

# hybrid (the default) and varied = diversity-penalized beam, focused = beam, playful = sampling.
_DIVERSE = {
    "strategy": "beam",
    "beam_size": 6,
    "n_best": 6,
    "diversity": "hamming",
    "num_groups": 3,
    "diversity_strength": 1.0,
}
STYLES: dict[Style, dict[str, Any]] = {
    Style.HYBRID: _DIVERSE,  # the same n-best, beside corpus replies (s2s_core.hybrid)
    Style.FOCUSED: {"strategy": "beam", "beam_size": 5, "n_best": 5},
    Style.VARIED: _DIVERSE,
    Style.PLAYFUL: {"strategy": "sample", "n_best": 4, "top_p": 0.9, "temperature": 0.9},
}
SHARED = {
    "max_len": 32,
    "min_len": 2,
    "no_repeat_ngram": 3,
    "max_word_uses": 2,
    "length_penalty": 1.0,
}


def decode_config(style: str, tuned: dict[str, Any] | None = None) -> DecodeConfig:
    """The style's preset over the shared settings, with a checkpoint's tuned ``decode``
    settings (metrics.json) in between."""
    settings = {**SHARED, **(tuned or {}), **STYLES[parse_style(style)]}
    if settings["strategy"] != "beam":
        settings.pop("beam_size", None)
        settings.pop("diversity", None)
        settings.pop("num_groups", None)
    return DecodeConfig.from_dict(settings)
