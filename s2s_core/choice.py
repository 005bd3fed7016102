"""The reply chosen among the n-best: the first candidate, in the n-best's order (MMI's when
a backward model reranked it), that a person would accept.

Rules, in order: a candidate must say something, must not be mostly ``<unk>`` and must not
repeat one of the bot's recent replies in this conversation; among those, the first without
a defect (``quality.defects``: a goodbye to a message that said none, a greeting to a
message that was none, cheering at bad news, a repeated word, a stock sentence that answers
nothing; cut at ``max_len`` mid-sentence; the bot's self-description when nobody asked)
wins, else the first acceptable one, else a fallback. A known question about the bot
(``s2s_core.persona``) gets its one true answer instead. Bad news that the chosen reply
meets without sympathy (the corpus holds little: "My grandmother passed away" got "That's
so cool! I love it", and then "I have a friend who is going to go to BYU") gets it: the
reply loses its cheering and stock sentences and opens with ``SORRY``, a rule of the
product, like the persona answers, not the model's words.
The worker, ``s2s eval`` and replay all choose through this one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from s2s_core.cleaning import sentences
from s2s_core.decoding import Hypothesis
from s2s_core.mmi import Reranked
from s2s_core.persona import describes_the_bot, persona_answer
from s2s_core.quality import defects, is_bad_news, is_cheerful, is_stock, is_sympathetic
from s2s_core.special import EOS_ID, UNK_ID
from s2s_core.tokenizer import Tokenizer

MAX_UNK_SHARE = 0.2
FALLBACK = "…"
SORRY = "I'm sorry to hear that."
PERSONA = -2  # Choice.index when the persona rule answered a question about the bot


@dataclass(frozen=True)
class Choice:
    text: str
    index: int  # position in the (reranked) n-best, -1 for the fallback, -2 (PERSONA)
    candidates: list[dict[str, Any]]  # each: text, score, [forward, backward], [defects]


def choose(
    nbest: Sequence[Hypothesis | Reranked],
    tokenizer: Tokenizer,
    message: str,
    recent_bot: Sequence[str] = (),
    avoid_defects: bool = True,
) -> Choice:
    """``avoid_defects=False`` keeps only the acceptability rules, without the defect and
    persona rules (for ablations: the choice as it was before them)."""
    answer = persona_answer(message) if avoid_defects else None
    said = {_norm(t) for t in recent_bot}
    texts, candidates, clean, acceptable = [], [], -1, -1
    for i, item in enumerate(nbest):
        hyp = item.hypothesis if isinstance(item, Reranked) else item
        tokens = [t for t in hyp.tokens if t != EOS_ID]
        text = tokenizer.decode(tokens).strip()
        found = defects(text, message)
        if describes_the_bot(text) and answer is None:
            found.append("unasked_self_description")
        if not hyp.tokens or hyp.tokens[-1] != EOS_ID:
            found.append("unfinished")  # cut at max_len, mid-sentence
        texts.append(text)
        candidates.append(_candidate(item, text, found))
        unk_share = tokens.count(UNK_ID) / max(len(tokens), 1)
        if not text or unk_share > MAX_UNK_SHARE or _norm(text) in said:
            continue
        acceptable = i if acceptable < 0 else acceptable
        if not found and clean < 0:
            clean = i
    if answer is not None:
        return Choice(answer, PERSONA, candidates)
    pick = clean if clean >= 0 and avoid_defects else acceptable
    text = texts[pick] if pick >= 0 else FALLBACK
    if avoid_defects and is_bad_news(message) and not is_sympathetic(text):
        text = _sympathise(text)
    return Choice(text, pick, candidates)


def _sympathise(text: str) -> str:
    """``text`` without its cheering and stock sentences, opening with ``SORRY``."""
    kept = [
        s[:1].upper() + s[1:] for s in sentences(text) if not is_cheerful(s) and not is_stock(s)
    ]
    if kept and len(kept[-1].split()) < 2 and kept[-1][-1] not in ".!?":
        kept.pop()  # a word left where max_len cut the reply ("... a good person. I")
    return " ".join([SORRY, *kept])


def _candidate(item: Hypothesis | Reranked, text: str, found: list[str]) -> dict[str, Any]:
    if isinstance(item, Reranked):
        entry = {
            "text": text,
            "score": round(item.score, 4),
            "forward": round(item.forward, 4),
            "backward": round(item.backward, 4),
        }
    else:
        entry = {"text": text, "score": round(item.score, 4)}
    if found:
        entry["defects"] = found
    return entry


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
