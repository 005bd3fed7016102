"""The reply styles a person can choose (/settings in Telegram, ``s2s chat --style``): the one
list every part uses. What each style decodes with is the worker's business
(``worker/replies.py``); what it means to a person is here, because the bot shows it."""

from __future__ import annotations

from enum import StrEnum


class Style(StrEnum):
    HYBRID = "hybrid"  # the varied n-best beside corpus replies, one ranker over all
    FOCUSED = "focused"  # beam search: the most likely reply
    VARIED = "varied"  # diversity-penalized beam search, reranked by MMI
    PLAYFUL = "playful"  # sampling


DEFAULT_STYLE = Style.HYBRID
# Styles whose candidates include replies people gave in the public training corpus.
CORPUS_STYLES = frozenset({Style.HYBRID})
DESCRIPTIONS = {
    Style.HYBRID: "hybrid: our model's replies and people's replies from a public chat corpus, "
    "the best fit chosen (default)",
    Style.FOCUSED: "focused: the most likely reply (beam search)",
    Style.VARIED: "varied: only our model's own replies (diverse beam search)",
    Style.PLAYFUL: "playful: sampled, surprising",
}


def parse_style(name: str) -> Style:
    """``name`` as a Style, or ValueError naming the choices."""
    try:
        return Style(name)
    except ValueError:
        choices = ", ".join(s.value for s in Style)
        raise ValueError(f"style must be one of {choices}, got {name!r}") from None
