"""Who the bot says it is: the questions about itself it answers with one true answer each
(``resources/persona.tsv``), and the rule that gives those answers.

Why a rule and not training: mixed into the chitchat training pairs (20 copies of 42 pairs),
the answers were learned, and then "I'm a chatbot: a small neural network that learned to
chat from conversations." became the model's favourite reply to everything: the one
predictable sentence that fits any first message. So the n-best choice (``s2s_core.choice``)
answers a question found here with its answer, and passes over candidates that describe the
bot when nobody asked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# Phrases only the bot's self-description uses; a reply with one of them describes the bot.
SELF_DESCRIPTION = ("small neural network", "open-source chatbot", "s2s-chatbot")
_NOT_WORD = re.compile(r"[^a-z0-9']+")


def normalise(text: str) -> str:
    """Lower case, words only: "Are you a ROBOT??" and "are you a robot" are one question."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("’", "'")).split())


@lru_cache(maxsize=1)
def persona_pairs() -> tuple[tuple[str, str], ...]:
    """(question, answer) pairs, in file order."""
    source = resources.files("s2s_core").joinpath("resources/persona.tsv")
    pairs = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            question, answer = line.split("\t")
            pairs.append((question, answer))
    return tuple(pairs)


@lru_cache(maxsize=1)
def _answers() -> dict[str, str]:
    return {normalise(question): answer for question, answer in persona_pairs()}


def persona_answer(message: str) -> str | None:
    """The answer when ``message`` is one of the known questions about the bot."""
    return _answers().get(normalise(message))


def describes_the_bot(text: str) -> bool:
    """Whether ``text`` gives the bot's self-description."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in SELF_DESCRIPTION)
