"""Decoding presets per reply style and the choice among the n-best."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2s_core.decoding import DecodeConfig, Hypothesis
from s2s_core.special import EOS_ID, UNK_ID
from s2s_core.tokenizer import Tokenizer

# focused = beam, varied = diversity-penalized beam (the default), playful = sampling.
STYLES: dict[str, dict[str, Any]] = {
    "focused": {"strategy": "beam", "beam_size": 5, "n_best": 5},
    "varied": {
        "strategy": "beam",
        "beam_size": 6,
        "n_best": 6,
        "diversity": "hamming",
        "num_groups": 3,
        "diversity_strength": 1.0,
    },
    "playful": {"strategy": "sample", "n_best": 4, "top_p": 0.9, "temperature": 0.9},
}
SHARED = {"max_len": 32, "min_len": 2, "no_repeat_ngram": 3, "length_penalty": 1.0}
MAX_UNK_SHARE = 0.2
FALLBACK = "…"


def decode_config(style: str, tuned: dict[str, Any] | None = None) -> DecodeConfig:
    """The style's preset over the shared settings, with a checkpoint's tuned ``decode``
    settings (metrics.json) in between."""
    settings = {**SHARED, **(tuned or {}), **STYLES[style]}
    if settings["strategy"] != "beam":
        settings.pop("beam_size", None)
        settings.pop("diversity", None)
        settings.pop("num_groups", None)
    return DecodeConfig.from_dict(settings)


@dataclass(frozen=True)
class Choice:
    text: str
    index: int  # position in the n-best, -1 for the fallback
    candidates: list[dict[str, Any]]


def choose(hyps: list[Hypothesis], tokenizer: Tokenizer, recent_bot: list[str]) -> Choice:
    """The best candidate that says something, is not mostly ``<unk>``, and does not repeat
    one of the bot's recent replies in this conversation."""
    said = {_norm(t) for t in recent_bot}
    texts, candidates, pick = [], [], -1
    for i, hyp in enumerate(hyps):
        tokens = [t for t in hyp.tokens if t != EOS_ID]
        text = tokenizer.decode(tokens).strip()
        texts.append(text)
        candidates.append({"text": text, "score": round(hyp.score, 4)})
        unk_share = tokens.count(UNK_ID) / max(len(tokens), 1)
        if pick < 0 and text and unk_share <= MAX_UNK_SHARE and _norm(text) not in said:
            pick = i
    return Choice(texts[pick] if pick >= 0 else FALLBACK, pick, candidates)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
